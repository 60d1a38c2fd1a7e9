/**
 * Keeps the newest status seen per user so that late or repeated statuses are dropped:
 * pushes can overtake answers, and a reconnect re-read returns statuses already pushed.
 * Pure: no I/O, no timers.
 */
import type { UserStatus } from '../actors/types.js';

export class VersionTracker {
  private readonly latest = new Map<string, UserStatus>();

  /**
   * Records `list` (oldest first) and returns the statuses that are newer than what was held,
   * in their order. A status whose version equals or is below the held one is dropped.
   */
  acceptNewer(list: readonly UserStatus[]): UserStatus[] {
    const fresh: UserStatus[] = [];
    for (const status of list) {
      const held = this.latest.get(status.userID);
      if (held !== undefined && status.version <= held.version) continue;
      this.latest.set(status.userID, status);
      fresh.push(status);
    }
    return fresh;
  }

  /**
   * Records `list` like {@link acceptNewer} and returns it with each status that is older than
   * the held one replaced by the held one, so an answer overtaken by a push never goes back in time.
   */
  newestOf(list: readonly UserStatus[]): UserStatus[] {
    this.acceptNewer(list);
    return list.map((status) => {
      const held = this.latest.get(status.userID);
      return held !== undefined && held.version > status.version ? held : status;
    });
  }

  /** The newest version held for `userID`, or undefined when none was seen. */
  versionOf(userID: string): number | undefined {
    return this.latest.get(userID)?.version;
  }

  /** Forgets everything, for a new login whose users may differ. */
  clear(): void {
    this.latest.clear();
  }
}
