import { publicStatus } from '../../actors/publicStatus.js';
import { UserStatusType, type RateLimitedCall, type RateWindows, type UserStatus } from '../../actors/types.js';
import type { StoredSnapshot } from '../../actors/userActor.js';
import { decodeFirst, decodeSequence, encodeSequence } from '../codec.js';
import { userKey } from '../subjects.js';
import type { KvBucket } from '../transport/types.js';
import type { WebhookEvent } from '../../webhooks/stateChange.js';

export interface StoredActor {
  snapshot: StoredSnapshot;
  /** Webhook events not yet taken by the app server, oldest first. */
  outbox: readonly WebhookEvent[];
  revision: number;
}

/** The value of a `users` key: the snapshot and the outbox, written together by one compare-and-set. */
interface UserRecord {
  snapshot: StoredSnapshot;
  outbox: readonly WebhookEvent[];
}

export const unloginedStatus = (userID: string): UserStatus => ({
  userID,
  statusType: UserStatusType.UNLOGINED,
  customStatus: '',
  version: 0,
  lastSeenAt: 0,
});

/** What a `users` value may hold first: the public status, or (written before it led) the record or the bare snapshot. */
type Leading = UserStatus | UserRecord | StoredSnapshot;

const statusOfSnapshot = (snapshot: StoredSnapshot): UserStatus => publicStatus(snapshot.context);

/**
 * The snapshot with its lists of times (the subscriptions' and the rate windows') copied for the
 * encoder. msgpackr's array encoder, once optimised, reads arrays of doubles and arrays of
 * anything at one site, and V8 makes such a site monomorphic by turning each array of doubles it
 * reads into an array of boxed numbers, in place: the actor's own list of 50 subscription times
 * then held 50 heap numbers more (~700 B per user on a node that writes every change). The copies
 * are turned instead, and dropped with the encoding; encoding measured no slower.
 */
function withTimesCopied(snapshot: StoredSnapshot): StoredSnapshot {
  const { subscriptions, rateWindows } = snapshot.context;
  const windows: RateWindows = {};
  for (const call of Object.keys(rateWindows) as RateLimitedCall[]) windows[call] = rateWindows[call]!.slice();
  return {
    value: snapshot.value,
    context: {
      ...snapshot.context,
      subscriptions: { userIDs: subscriptions.userIDs, subscribedAt: subscriptions.subscribedAt.slice() },
      rateWindows: windows,
    },
  };
}

/**
 * Durable user state: a `users` value is the user's public status, then the record
 * (the actor's snapshot and its outbox), two msgpack values back to back, written by
 * one compare-and-set on the revision the actor was loaded at, so a stale owner cannot
 * overwrite a newer state. A node restores an actor from the record; `getUserStatus`
 * of a user not resident on the node decodes the status alone, not the snapshot with
 * the user's whole subscription list. Every change that subscribers see is written
 * before it is announced. A separate status read model cost a second JetStream write
 * per change, and could fall behind the snapshot when that second write failed.
 */
export class UserStore {
  constructor(private readonly users: KvBucket) {}

  async load(sdkAppID: number, userID: string): Promise<StoredActor | null> {
    const entry = await this.users.get(userKey(sdkAppID, userID));
    if (!entry) return null;
    const values = decodeSequence(entry.value);
    const record = values[values.length - 1] as UserRecord | StoredSnapshot;
    // Values written before the outbox existed hold the bare snapshot.
    if (!('snapshot' in record)) return { snapshot: record, outbox: [], revision: entry.revision };
    return { snapshot: record.snapshot, outbox: record.outbox ?? [], revision: entry.revision };
  }

  /**
   * Writes the status, the snapshot and the outbox if the key is still at `revision`
   * (0: absent); returns the new revision. An event is thus durable exactly when its
   * change is.
   */
  async save(sdkAppID: number, status: UserStatus, snapshot: StoredSnapshot, outbox: readonly WebhookEvent[], revision: number): Promise<number> {
    const key = userKey(sdkAppID, status.userID);
    const record: UserRecord = { snapshot: withTimesCopied(snapshot), outbox };
    const value = encodeSequence(status, record);
    return revision === 0 ? this.users.create(key, value) : this.users.update(key, value, revision);
  }

  /** The public status stored with the user's snapshot; UNLOGINED for a user never seen. */
  async status(sdkAppID: number, userID: string): Promise<UserStatus> {
    const entry = await this.users.get(userKey(sdkAppID, userID));
    if (!entry) return unloginedStatus(userID);
    let leading: Partial<Leading> | undefined;
    try {
      leading = decodeFirst<Leading>(entry.value);
    } catch {
      leading = undefined;
    }
    if (typeof leading === 'object' && leading !== null) {
      if ('snapshot' in leading) return statusOfSnapshot(leading.snapshot!);
      if ('context' in leading) return statusOfSnapshot(leading as StoredSnapshot);
      if (typeof (leading as UserStatus).version === 'number') return leading as UserStatus;
    }
    // A value that holds no status is not the user's word on anything: UNKNOWN, at version 0 so
    // that no receiver takes it over a status it holds, and the rest of a query is still answered.
    return { ...unloginedStatus(userID), statusType: UserStatusType.UNKNOWN };
  }
}
