import { publicStatus } from '../actors/publicStatus.js';
import type { ProcessedEvent } from '../actors/userActor.js';
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

/** The record of one event a user actor processed, for a dashboard watching that user. */
export function transitionRecord(processed: ProcessedEvent, at: number): TransitionRecord {
  const status = publicStatus(processed.context);
  return {
    at,
    event: processed.event,
    from: processed.from,
    to: processed.to,
    activeStates: activeStates(processed.to),
    statusType: status.statusType,
    customStatus: status.customStatus,
    version: status.version,
  };
}
