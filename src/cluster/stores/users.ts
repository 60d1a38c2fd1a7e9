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

  /** @throws CorruptUserRecordError when the value holds no snapshot this version can read. */
  async load(sdkAppID: number, userID: string): Promise<StoredActor | null> {
    const key = userKey(sdkAppID, userID);
    const entry = await this.users.get(key);
    if (!entry) return null;
    let stored: StoredActor | undefined;
    let cause: unknown;
    try {
      const values = decodeSequence(entry.value);
      const record = values[values.length - 1] as Partial<UserRecord> | StoredSnapshot;
      // Values written before the outbox existed hold the bare snapshot.
      if (isRecord(record) && !('snapshot' in record)) stored = { snapshot: record as StoredSnapshot, outbox: [], revision: entry.revision };
      else if (isRecord(record)) stored = { snapshot: record.snapshot as StoredSnapshot, outbox: record.outbox ?? [], revision: entry.revision };
    } catch (error) {
      cause = error;
    }
    if (stored && isReadableSnapshot(stored.snapshot) && Array.isArray(stored.outbox)) return stored;
    throw new CorruptUserRecordError(key, entry.revision, statusIn(entry.value, userID).version, cause === undefined ? {} : { cause });
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
    return entry ? statusIn(entry.value, userID) : unloginedStatus(userID);
  }
}

/**
 * A `users` value this version cannot read (written by a later version, or damaged). The
 * status it leads with may still decode: `lastVersion` is its version, 0 if it does not.
 */
export class CorruptUserRecordError extends Error {
  constructor(readonly key: string, readonly revision: number, readonly lastVersion: number, options?: ErrorOptions) {
    super(`the stored state of ${key} (revision ${revision}) cannot be read`, options);
    this.name = 'CorruptUserRecordError';
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Whether a decoded snapshot has every field an actor restores from, of its type. */
function isReadableSnapshot(snapshot: unknown): snapshot is StoredSnapshot {
  if (!isRecord(snapshot) || !isRecord(snapshot.context)) return false;
  const c = snapshot.context;
  const subscriptions = c.subscriptions;
  return (
    (typeof snapshot.value === 'string' || isRecord(snapshot.value)) &&
    isRecord(c.devices) &&
    Object.values(c.devices).every((device) => isRecord(device) && typeof device.connId === 'string' && typeof device.gatewayId === 'string' && typeof device.heartbeatDeadline === 'number') &&
    Array.isArray(c.droppedDevices) &&
    typeof c.customStatus === 'string' &&
    Number.isSafeInteger(c.version) &&
    typeof c.lastSeenAt === 'number' &&
    // Subscriptions were stored as one `{ userID, subscribedAt }` each before they were two lists.
    (Array.isArray(subscriptions) || (isRecord(subscriptions) && Array.isArray(subscriptions.userIDs) && Array.isArray(subscriptions.subscribedAt))) &&
    typeof c.retentionDeadline === 'number' &&
    typeof c.retentionMs === 'number' &&
    isRecord(c.rateWindows)
  );
}

/** The public status a `users` value leads with (or its snapshot's, for values written before). */
function statusIn(value: Uint8Array, userID: string): UserStatus {
  let leading: Partial<Leading> | undefined;
  try {
    leading = decodeFirst<Leading>(value);
  } catch {
    leading = undefined;
  }
  if (isRecord(leading)) {
    if ('snapshot' in leading && isReadableSnapshot(leading.snapshot)) return statusOfSnapshot(leading.snapshot);
    if ('context' in leading && isReadableSnapshot(leading)) return statusOfSnapshot(leading as StoredSnapshot);
    if (Number.isSafeInteger((leading as UserStatus).version)) return leading as UserStatus;
  }
  // A value that holds no status is not the user's word on anything: UNKNOWN, at version 0 so
  // that no receiver takes it over a status it holds, and the rest of a query is still answered.
  return { ...unloginedStatus(userID), statusType: UserStatusType.UNKNOWN };
}
