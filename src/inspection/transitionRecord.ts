import type { InspectionEvent } from 'xstate';
import { publicStatus } from '../actors/publicStatus.js';
import type { PresenceContext } from '../actors/types.js';
import { activeStates } from './userInspection.js';

/** One line of a user's live transition log. */
export interface TransitionRecord {
  at: number;
  /** The event the machine processed: `LOGIN`, `HEARTBEAT`, `xstate.after.heartbeatTimeout…` for a timer. */
  event: string;
  from: unknown;
  to: unknown;
  activeStates: string[];
  statusType: number;
  customStatus: string;
  version: number;
}

/**
 * Turns xstate's inspection events into transition records: one per event the
 * actor processed (`@xstate.snapshot`; the presence machine spawns no children),
 * with the state before and after. It must see every event to know the state
 * before, but builds a record only when `wanted` (a dashboard watches); otherwise,
 * and for other inspection events, it yields `undefined`.
 */
export function transitionRecorder(now: () => number): (event: InspectionEvent, wanted: boolean) => TransitionRecord | undefined {
  let current: unknown;
  return (event, wanted) => {
    if (event.type !== '@xstate.snapshot') return undefined;
    const snapshot = event.snapshot as { value?: unknown; context?: PresenceContext };
    const from = current;
    current = snapshot.value;
    if (!wanted || !snapshot.context) return undefined;
    const status = publicStatus(snapshot.context);
    return {
      at: now(),
      event: event.event.type,
      from,
      to: snapshot.value,
      activeStates: activeStates(snapshot.value),
      statusType: status.statusType,
      customStatus: status.customStatus,
      version: status.version,
    };
  };
}
