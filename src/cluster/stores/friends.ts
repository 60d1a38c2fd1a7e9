import { decode, encode } from '../codec.js';
import { userKey } from '../subjects.js';
import { KvConflictError } from '../transport/errors.js';
import type { KvBucket } from '../transport/types.js';

/** How often a friend-list write retries a lost compare-and-set before giving up. */
const MAX_CAS_ATTEMPTS = 20;

/**
 * Mutual friend lists, one key per user in the `friends` bucket. Every change is a
 * compare-and-set, so concurrent admin calls on any node never drop each other's edits.
 */
export class FriendStore {
  constructor(private readonly bucket: KvBucket) {}

  async friendsOf(sdkAppID: number, userID: string): Promise<string[]> {
    const entry = await this.bucket.get(userKey(sdkAppID, userID));
    return entry ? decode<string[]>(entry.value) : [];
  }

  /** Applies mutual additions and removals; returns every user whose list changed. */
  async apply(sdkAppID: number, add: ReadonlyArray<[string, string]>, remove: ReadonlyArray<[string, string]>): Promise<string[]> {
    const changes = new Map<string, { add: Set<string>; remove: Set<string> }>();
    const change = (user: string) => {
      let c = changes.get(user);
      if (!c) changes.set(user, (c = { add: new Set(), remove: new Set() }));
      return c;
    };
    for (const [a, b] of add) {
      change(a).add.add(b);
      change(b).add.add(a);
    }
    for (const [a, b] of remove) {
      change(a).remove.add(b);
      change(b).remove.add(a);
    }
    for (const [user, c] of changes) await this.update(sdkAppID, user, c.add, c.remove);
    return [...changes.keys()];
  }

  private async update(sdkAppID: number, userID: string, add: Set<string>, remove: Set<string>): Promise<void> {
    const key = userKey(sdkAppID, userID);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await this.bucket.get(key);
      const current = new Set(entry ? decode<string[]>(entry.value) : []);
      for (const id of add) current.add(id);
      for (const id of remove) current.delete(id);
      current.delete(userID);
      const value = encode([...current].sort());
      try {
        if (entry) await this.bucket.update(key, value, entry.revision);
        else await this.bucket.create(key, value);
        return;
      } catch (error) {
        if (!(error instanceof KvConflictError)) throw error;
      }
    }
    throw new Error(`friend list of ${userID} kept changing under ${MAX_CAS_ATTEMPTS} concurrent writers; retry the call`);
  }
}
