import type { Snapshot } from 'xstate';
import { publicStatus } from '../../actors/publicStatus.js';
import { UserStatusType, type PresenceContext, type UserStatus } from '../../actors/types.js';
import { decode, encode } from '../codec.js';
import { userKey } from '../subjects.js';
import type { KvBucket } from '../transport/types.js';
import type { WebhookEvent } from '../../webhooks/stateChange.js';

export interface StoredActor {
  snapshot: Snapshot<unknown>;
  /** Webhook events not yet taken by the app server, oldest first. */
  outbox: WebhookEvent[];
  revision: number;
}

/** The value of a `users` key: the snapshot and the outbox, written together by one compare-and-set. */
interface UserRecord {
  snapshot: Snapshot<unknown>;
  outbox: WebhookEvent[];
}

export const unloginedStatus = (userID: string): UserStatus => ({
  userID,
  statusType: UserStatusType.UNLOGINED,
  customStatus: '',
  version: 0,
  lastSeenAt: 0,
});

/**
 * Durable user state: the actor snapshot in `users`, what a node restores an actor
 * from and what `getUserStatus` reads for users whose actor is not resident here.
 * Snapshot writes are compare-and-set on the revision the actor was loaded at, so a
 * stale owner cannot overwrite a newer state. Every change that subscribers see is
 * written before it is announced, so the snapshot is never behind a pushed status;
 * a separate status read model cost a second JetStream write per change, and could
 * fall behind the snapshot when that second write failed.
 */
export class UserStore {
  constructor(private readonly users: KvBucket) {}

  async load(sdkAppID: number, userID: string): Promise<StoredActor | null> {
    const entry = await this.users.get(userKey(sdkAppID, userID));
    if (!entry) return null;
    const record = decode<UserRecord>(entry.value);
    return { snapshot: record.snapshot, outbox: record.outbox ?? [], revision: entry.revision };
  }

  /**
   * Writes the snapshot and the outbox if the key is still at `revision` (0: absent);
   * returns the new revision. An event is thus durable exactly when its change is.
   */
  async save(sdkAppID: number, userID: string, snapshot: Snapshot<unknown>, outbox: WebhookEvent[], revision: number): Promise<number> {
    const key = userKey(sdkAppID, userID);
    const record: UserRecord = { snapshot, outbox };
    const value = encode(record);
    return revision === 0 ? this.users.create(key, value) : this.users.update(key, value, revision);
  }

  /** The public status in the user's stored snapshot; UNLOGINED for a user never seen. */
  async status(sdkAppID: number, userID: string): Promise<UserStatus> {
    const stored = await this.load(sdkAppID, userID);
    if (!stored) return unloginedStatus(userID);
    return publicStatus((stored.snapshot as Snapshot<unknown> & { context: PresenceContext }).context);
  }
}
