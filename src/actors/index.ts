export { createPresenceMachine, initialContext, systemClock, type Clock, type PresenceMachine } from './machine.js';
export { UserActor, timersOf, type ActorObserver, type ProcessedEvent, type StepResult, type StoredSnapshot, type TimerClock, type Transition, type UserActorOptions } from './userActor.js';
export { publicStatus, statusChanged } from './publicStatus.js';
export { CUSTOM_STATUS_MAX_BYTES, gatingRefusal, refusal, isSelfQuery, type Refusal, type StatusCall } from './callPolicy.js';
export { NO_SUBSCRIPTIONS, storedSubscriptions, subscribe, subscriptionEntries, unsubscribe } from './subscriptions.js';
export { admit } from './rateWindow.js';
export { aggregateStatus, MAX_DROPPED_DEVICES } from './devices.js';
export * from './types.js';
