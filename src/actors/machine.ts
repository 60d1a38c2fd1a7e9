import { and, assign, emit, enqueueActions, not, setup } from 'xstate';
import { isRevokedBy, revocationOf } from '../auth/usersig.js';
import { ErrorCode } from '../errors.js';
import { isSelfQuery, recordCall, refusal, type StatusCall } from './callPolicy.js';
import { NO_DROPPED_DEVICES, deviceRecord, earliestDeadline, expireDevices, forgetDropped, hasDevice, rememberDropped, withDevice, withoutDevice } from './devices.js';
import { NO_SUBSCRIPTIONS, subscribe, unsubscribe } from './subscriptions.js';
import { DEFAULT_LIMITS } from './types.js';
import type {
  ActorEmitted,
  PresenceContext,
  PresenceEvent,
  PresenceInput,
} from './types.js';

/** Where the machine reads the time; xstate's `SimulatedClock` fits, so tests skip time. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

type DeviceEvent = Extract<PresenceEvent, { deviceId: string; connId: string }>;
type CallEvent = Extract<PresenceEvent, { type: 'QUERY' | 'SUBSCRIBE' | 'UNSUBSCRIBE' }>;

const CALL_OF: Record<CallEvent['type'], StatusCall['call']> = {
  QUERY: 'getUserStatus',
  SUBSCRIBE: 'subscribeUserStatus',
  UNSUBSCRIBE: 'unsubscribeUserStatus',
};

const statusCall = (event: CallEvent): StatusCall => ({ call: CALL_OF[event.type], userIDs: event.userIDs });

const isDeviceEvent = (event: PresenceEvent): event is DeviceEvent => 'connId' in event && 'deviceId' in event;

/** The connection that sent the event is the one the actor holds for that device. */
const isKnownConnection = (context: PresenceContext, event: PresenceEvent): boolean =>
  isDeviceEvent(event) && context.devices[event.deviceId]?.connId === event.connId;

const requestIdOf = (event: PresenceEvent): string => ('requestId' in event && event.requestId) || '';

/** A login whose UserSig was issued before the admin kicked the user; absent `sigTime` counts as issued before. */
const isRevokedLogin = (context: PresenceContext, event: PresenceEvent): boolean =>
  event.type === 'LOGIN' && context.revokedAt > 0 && isRevokedBy(event.sigTime ?? 0, context.revokedAt);

export function initialContext(input: PresenceInput): PresenceContext {
  return {
    sdkAppID: input.sdkAppID,
    userID: input.userID,
    devices: deviceRecord(),
    droppedDevices: NO_DROPPED_DEVICES,
    customStatus: '',
    version: 0,
    lastSeenAt: 0,
    subscriptions: NO_SUBSCRIPTIONS,
    retentionDeadline: 0,
    retentionMs: DEFAULT_LIMITS.subscriptionRetentionMs,
    rateWindows: {},
    revokedAt: 0,
  };
}

/**
 * The user presence machine of SPEC.md §2–3. One actor per user owns its devices,
 * custom status, subscriptions and rate windows, and arms its own timers.
 *
 * Deadlines are absolute times in context and the `after` delays are computed from
 * them, because xstate does not re-arm delayed events of a restored snapshot
 * (statelyai/xstate#5331): the host sends `RESUME` after restoring, which re-enters
 * the current state and so re-arms every timer with the time left.
 *
 * Requests are answered with an emitted `reply` event; a replaced or kicked
 * connection with an emitted `kick`.
 */
export function createPresenceMachine(clock: Clock = systemClock) {
  return setup({
    types: {
      context: {} as PresenceContext,
      events: {} as PresenceEvent,
      input: {} as PresenceInput,
      emitted: {} as ActorEmitted,
    },
    delays: {
      heartbeatTimeout: ({ context }) => Math.max(0, (earliestDeadline(context.devices) ?? clock.now()) - clock.now()),
      subscriptionRetention: ({ context }) => Math.max(0, context.retentionDeadline - clock.now()),
    },
    guards: {
      isKnownConnection: ({ context, event }) => isKnownConnection(context, event),
      userSigRevoked: ({ context, event }) => isRevokedLogin(context, event),
      sameDevice: ({ context, event }) => event.type === 'LOGIN' && hasDevice(context.devices, event.deviceId),
      isLastDevice: ({ context, event }) =>
        isKnownConnection(context, event) && Object.keys(context.devices).length === 1,
      hasDroppedDevices: ({ context }) => context.droppedDevices.length > 0,
      allDevicesTimedOut: ({ context }) =>
        Object.keys(expireDevices(context.devices, clock.now()).alive).length === 0,
      nothingRetained: ({ context }) => context.subscriptions.userIDs.length === 0,
      callRefused: ({ context, event }) =>
        refusal(context, statusCall(event as CallEvent), (event as CallEvent).policy, clock.now()) !== undefined,
      customStatusUnchanged: ({ context, event }) =>
        event.type === 'SET_CUSTOM_STATUS' && event.customStatus === context.customStatus,
    },
    actions: {
      replyOk: emit(({ event }) => ({ type: 'reply' as const, requestId: requestIdOf(event), ok: true as const })),
      replyNotLoggedIn: emit(({ event }) => ({
        type: 'reply' as const,
        requestId: requestIdOf(event),
        ok: false as const,
        code: ErrorCode.NOT_LOGGED_IN,
        desc: 'this connection is not logged in (log in again)',
      })),
      replyUserSigRevoked: emit(({ context, event }) => ({
        type: 'reply' as const,
        requestId: requestIdOf(event),
        ok: false as const,
        code: ErrorCode.USERSIG_REVOKED,
        desc: revocationOf((event as Extract<PresenceEvent, { type: 'LOGIN' }>).sigTime ?? 0, context.revokedAt)!.message,
      })),
      replyRefused: emit(({ context, event }) => {
        const call = event as CallEvent;
        const refused = refusal(context, statusCall(call), call.policy, clock.now())!;
        return { type: 'reply' as const, requestId: requestIdOf(event), ok: false as const, ...refused };
      }),
      kickReplacedConnection: emit(({ context, event }) => {
        const { deviceId } = event as DeviceEvent;
        const old = context.devices[deviceId]!;
        return { type: 'kick' as const, connId: old.connId, gatewayId: old.gatewayId, code: ErrorCode.KICKED_BY_SAME_DEVICE };
      }),
      addDevice: assign(({ context, event }) => {
        if (event.type !== 'LOGIN') return {};
        const device = {
          connId: event.connId,
          gatewayId: event.gatewayId,
          platform: event.platform,
          heartbeatDeadline: clock.now() + event.policy.limits.heartbeatTimeoutMs,
        };
        return {
          devices: withDevice(context.devices, event.deviceId, device),
          droppedDevices: forgetDropped(context.droppedDevices, event.deviceId),
          retentionMs: event.policy.limits.subscriptionRetentionMs,
        };
      }),
      moveHeartbeatDeadline: assign(({ context, event }) => {
        if (event.type !== 'HEARTBEAT') return {};
        const device = context.devices[event.deviceId]!;
        const heartbeatDeadline = clock.now() + event.policy.limits.heartbeatTimeoutMs;
        return {
          devices: withDevice(context.devices, event.deviceId, { ...device, heartbeatDeadline }),
          retentionMs: event.policy.limits.subscriptionRetentionMs,
        };
      }),
      removeLoggedOutDevice: assign(({ context, event }) => {
        const { deviceId } = event as DeviceEvent;
        return { devices: withoutDevice(context.devices, deviceId), droppedDevices: forgetDropped(context.droppedDevices, deviceId) };
      }),
      removeDroppedDevice: assign(({ context, event }) => {
        const { deviceId } = event as DeviceEvent;
        return { devices: withoutDevice(context.devices, deviceId), droppedDevices: rememberDropped(context.droppedDevices, [deviceId]) };
      }),
      closeTimedOutDevices: enqueueActions(({ context, enqueue }) => {
        for (const id of expireDevices(context.devices, clock.now()).expired) {
          const device = context.devices[id]!;
          enqueue.emit({ type: 'kick', connId: device.connId, gatewayId: device.gatewayId, code: ErrorCode.NOT_LOGGED_IN });
        }
      }),
      removeTimedOutDevices: assign(({ context }) => {
        const { alive, expired } = expireDevices(context.devices, clock.now());
        return { devices: alive, droppedDevices: rememberDropped(context.droppedDevices, expired) };
      }),
      kickAllDevices: enqueueActions(({ context, enqueue }) => {
        for (const device of Object.values(context.devices)) {
          enqueue.emit({ type: 'kick', connId: device.connId, gatewayId: device.gatewayId, code: ErrorCode.USERSIG_REVOKED });
        }
      }),
      revokeUserSigs: assign(() => ({ revokedAt: clock.now() })),
      forgetAllDevices: assign(() => ({ devices: deviceRecord(), droppedDevices: NO_DROPPED_DEVICES })),
      bumpVersion: assign(({ context }) => ({ version: context.version + 1 })),
      becomeOnline: assign(({ context }) => ({
        version: context.version + 1,
        lastSeenAt: 0,
        retentionDeadline: 0,
      })),
      leaveOnline: assign(({ context, event }) => {
        const retentionMs = 'policy' in event ? event.policy.limits.subscriptionRetentionMs : context.retentionMs;
        return {
          version: context.version + 1,
          customStatus: '',
          lastSeenAt: clock.now(),
          retentionDeadline: context.subscriptions.userIDs.length > 0 ? clock.now() + retentionMs : 0,
        };
      }),
      setCustomStatus: assign(({ context, event }) =>
        event.type === 'SET_CUSTOM_STATUS' ? { customStatus: event.customStatus, version: context.version + 1 } : {},
      ),
      recordCall: assign(({ context, event }) => {
        const call = event as CallEvent;
        if (isSelfQuery(context, statusCall(call))) return {};
        return { rateWindows: recordCall(context.rateWindows, CALL_OF[call.type], clock.now(), call.policy) };
      }),
      subscribe: assign(({ context, event }) => {
        if (event.type !== 'SUBSCRIBE') return {};
        return {
          subscriptions: subscribe(context.subscriptions, event.userIDs, clock.now(), event.policy.limits.subscriptionCap)
            .subscriptions,
        };
      }),
      replySubscribed: emit(({ context, event }) => {
        const call = event as Extract<PresenceEvent, { type: 'SUBSCRIBE' }>;
        // Computed on the context before `subscribe` runs: the ids this call pushed out.
        const { evicted } = subscribe(context.subscriptions, call.userIDs, clock.now(), call.policy.limits.subscriptionCap);
        return { type: 'reply' as const, requestId: requestIdOf(event), ok: true as const, evicted };
      }),
      unsubscribe: assign(({ context, event }) =>
        event.type === 'UNSUBSCRIBE' ? { subscriptions: unsubscribe(context.subscriptions, event.userIDs) } : {},
      ),
      clearSubscriptions: assign({ subscriptions: NO_SUBSCRIPTIONS, retentionDeadline: 0 }),
    },
  }).createMachine({
    id: 'presence',
    initial: 'unlogined',
    context: ({ input }) => initialContext(input),
    on: {
      QUERY: { actions: 'replyNotLoggedIn' },
      SUBSCRIBE: { actions: 'replyNotLoggedIn' },
      UNSUBSCRIBE: { actions: 'replyNotLoggedIn' },
      SET_CUSTOM_STATUS: { actions: 'replyNotLoggedIn' },
      LOGOUT: { actions: 'replyNotLoggedIn' },
      HEARTBEAT: { actions: 'replyNotLoggedIn' },
      DISCONNECT: {},
      KICK: { actions: ['revokeUserSigs', 'replyOk'] },
    },
    states: {
      unlogined: {
        initial: 'retainingSubscriptions',
        states: {
          retainingSubscriptions: {
            always: { guard: 'nothingRetained', target: 'idle' },
            after: { subscriptionRetention: { target: 'idle', actions: 'clearSubscriptions' } },
          },
          idle: {},
        },
        on: {
          LOGIN: [
            { guard: 'userSigRevoked', actions: 'replyUserSigRevoked' },
            { target: 'online', actions: ['addDevice', 'becomeOnline', 'replyOk'] },
          ],
          RESUME: { target: 'unlogined', reenter: true },
        },
      },
      offline: {
        initial: 'retainingSubscriptions',
        states: {
          retainingSubscriptions: {
            always: { guard: 'nothingRetained', target: 'idle' },
            after: { subscriptionRetention: { target: 'idle', actions: 'clearSubscriptions' } },
          },
          idle: {},
        },
        on: {
          LOGIN: [
            { guard: 'userSigRevoked', actions: 'replyUserSigRevoked' },
            { target: 'online', actions: ['addDevice', 'becomeOnline', 'replyOk'] },
          ],
          KICK: { target: 'unlogined', actions: ['revokeUserSigs', 'forgetAllDevices', 'bumpVersion', 'replyOk'] },
          RESUME: { target: 'offline', reenter: true },
        },
      },
      online: {
        after: {
          heartbeatTimeout: [
            {
              guard: 'allDevicesTimedOut',
              target: 'offline',
              actions: ['closeTimedOutDevices', 'removeTimedOutDevices', 'leaveOnline'],
            },
            { target: 'online', reenter: true, actions: ['closeTimedOutDevices', 'removeTimedOutDevices'] },
          ],
        },
        on: {
          LOGIN: [
            { guard: 'userSigRevoked', actions: 'replyUserSigRevoked' },
            // The same login again (the router resends it when the node it went to died after
            // persisting it): answered again, and the connection is not kicked as its own replacement.
            { guard: 'isKnownConnection', target: 'online', reenter: true, actions: ['addDevice', 'replyOk'] },
            { guard: 'sameDevice', target: 'online', reenter: true, actions: ['kickReplacedConnection', 'addDevice', 'replyOk'] },
            { target: 'online', reenter: true, actions: ['addDevice', 'replyOk'] },
          ],
          HEARTBEAT: [
            { guard: 'isKnownConnection', target: 'online', reenter: true, actions: ['moveHeartbeatDeadline', 'replyOk'] },
            { actions: 'replyNotLoggedIn' },
          ],
          LOGOUT: [
            { guard: not('isKnownConnection'), actions: 'replyNotLoggedIn' },
            {
              guard: and(['isLastDevice', 'hasDroppedDevices']),
              target: 'offline',
              actions: ['removeLoggedOutDevice', 'leaveOnline', 'replyOk'],
            },
            { guard: 'isLastDevice', target: 'unlogined', actions: ['removeLoggedOutDevice', 'leaveOnline', 'replyOk'] },
            { target: 'online', reenter: true, actions: ['removeLoggedOutDevice', 'replyOk'] },
          ],
          DISCONNECT: [
            { guard: not('isKnownConnection') },
            { guard: 'isLastDevice', target: 'offline', actions: ['removeDroppedDevice', 'leaveOnline'] },
            { target: 'online', reenter: true, actions: 'removeDroppedDevice' },
          ],
          SET_CUSTOM_STATUS: [
            { guard: not('isKnownConnection'), actions: 'replyNotLoggedIn' },
            { guard: 'customStatusUnchanged', actions: 'replyOk' },
            { actions: ['setCustomStatus', 'replyOk'] },
          ],
          QUERY: [
            { guard: not('isKnownConnection'), actions: 'replyNotLoggedIn' },
            { guard: 'callRefused', actions: 'replyRefused' },
            { actions: ['recordCall', 'replyOk'] },
          ],
          SUBSCRIBE: [
            { guard: not('isKnownConnection'), actions: 'replyNotLoggedIn' },
            { guard: 'callRefused', actions: 'replyRefused' },
            { actions: ['recordCall', 'replySubscribed', 'subscribe'] },
          ],
          UNSUBSCRIBE: [
            { guard: not('isKnownConnection'), actions: 'replyNotLoggedIn' },
            { guard: 'callRefused', actions: 'replyRefused' },
            { actions: ['recordCall', 'unsubscribe', 'replyOk'] },
          ],
          KICK: { target: 'unlogined', actions: ['revokeUserSigs', 'kickAllDevices', 'forgetAllDevices', 'leaveOnline', 'replyOk'] },
          RESUME: { target: 'online', reenter: true },
        },
      },
    },
  });
}

export type PresenceMachine = ReturnType<typeof createPresenceMachine>;
