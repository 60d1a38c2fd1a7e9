import { ownString } from '../cluster/codec.js';

/** Users one generation holds before the generation before it is let go (see `PushedVersions`). */
const GENERATION_USERS = 1 << 16;

type Versions = Map<number, Map<string, number>>;

/**
 * The newest version of each user's status that this gateway has pushed, per app, so that it
 * pushes no device an older one after it. A node's fan-out keeps the versions in order for what
 * it sends, but a device's pushes come from whichever node holds its user's shard, and a node
 * that lost that shard while frozen still sends what it had in flight when it thaws, or what its
 * fan-out handles before it notices the loss: older than what the new owner sent meanwhile.
 *
 * One entry per user pushed here, not per device: a change fanned out to many devices is checked
 * once per gateway message. The same version again is let through (another device's, or a repeat
 * the clients drop). Bounded: a generation holds at most `generationUsers` users; when it is full
 * the one before it is let go, so a user not pushed here during a whole generation is forgotten,
 * and at most twice that many are held.
 */
export class PushedVersions {
  private current: Versions = new Map();
  private previous: Versions | undefined;
  private users = 0;

  constructor(private readonly generationUsers = GENERATION_USERS) {}

  /**
   * Whether a status of `userID` at `version` may be pushed: not older than one pushed already.
   * It is then the newest. `decoded`: the userID is a slice of a decoded message's text, copied
   * before it is kept, so the entry does not keep the whole message alive.
   */
  admit(sdkAppID: number, userID: string, version: number, decoded: boolean): boolean {
    // A version that is no count cannot be ordered: pushed as it is, and not kept.
    if (!Number.isSafeInteger(version)) return true;
    let users = this.current.get(sdkAppID);
    const held = users?.get(userID);
    if (held !== undefined) {
      if (version < held) return false;
      if (version > held) users!.set(userID, version);
      return true;
    }
    const before = this.previous?.get(sdkAppID)?.get(userID);
    if (before !== undefined && version < before) return false;
    if (this.users >= this.generationUsers) {
      this.previous = this.current;
      this.current = new Map();
      this.users = 0;
      users = undefined;
    }
    if (!users) this.current.set(sdkAppID, (users = new Map()));
    users.set(decoded ? ownString(userID) : userID, version);
    this.users++;
    return true;
  }

  /** Users held, both generations. */
  get size(): number {
    let size = this.users;
    for (const users of this.previous?.values() ?? []) size += users.size;
    return size;
  }
}
