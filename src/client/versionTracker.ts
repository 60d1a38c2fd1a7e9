/**
 * Keeps the newest `version` seen per user so that late or repeated statuses are dropped:
 * pushes can overtake answers, and a reconnect re-read returns statuses already pushed.
 * Pure: no I/O, no timers.
 */
import type { UserStatus } from '../actors/types.js';

export class VersionTracker {
  private readonly latest = new Map<string, number>();

  /**
   * Records `list` (oldest first) and returns the statuses that are newer than what was held,
   * in their order. A status whose version equals or is below the held one is dropped.
   */
  acceptNewer(list: readonly UserStatus[]): UserStatus[] {
    const fresh: UserStatus[] = [];
    for (const status of list) {
      const held = this.latest.get(status.userID);
      if (held !== undefined && status.version <= held) continue;
      this.latest.set(status.userID, status.version);
      fresh.push(status);
    }
    return fresh;
  }

  /** The newest version held for `userID`, or undefined when none was seen. */
  versionOf(userID: string): number | undefined {
    return this.latest.get(userID);
  }

  /** Forgets everything, for a new login whose users may differ. */
  clear(): void {
    this.latest.clear();
  }
}
