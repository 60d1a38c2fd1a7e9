import { aggregateStatus } from './devices.js';
import type { PresenceContext, UserStatus } from './types.js';

/** The status the world sees, derived from the actor's context alone. */
export function publicStatus(context: PresenceContext): UserStatus {
  return {
    userID: context.userID,
    statusType: aggregateStatus(context.devices, context.droppedDevices),
    customStatus: context.customStatus,
    version: context.version,
    lastSeenAt: context.lastSeenAt,
  };
}

/**
 * True when an event changed what subscribers see. Every such change bumps `version`
 * inside the machine, so comparing versions is the whole diff; notifications are
 * derived from it rather than from entry actions, so re-entering a state is silent.
 */
export function statusChanged(before: UserStatus, after: UserStatus): boolean {
  return before.version !== after.version;
}
