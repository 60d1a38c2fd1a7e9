/**
 * The user presence model of SPEC.md §2, and the context and events of the
 * user actor that owns it.
 */

/** Tencent's values, so apps moving over keep their constants. */
export const UserStatusType = {
  UNKNOWN: 0,
  ONLINE: 1,
  OFFLINE: 2,
  UNLOGINED: 3,
} as const;
export type UserStatusType = (typeof UserStatusType)[keyof typeof UserStatusType];

/** What every subscriber, friend and device is told about a user. */
export interface UserStatus {
  userID: string;
  statusType: UserStatusType;
  customStatus: string;
  /** Grows by one with every change of `statusType` or `customStatus`. */
  version: number;
  /** Epoch ms at which the user last stopped being ONLINE; 0 while ONLINE or never logged in. */
  lastSeenAt: number;
}

export const PLATFORMS = ['web', 'android', 'ios', 'windows', 'mac', 'linux', 'other'] as const;
export type Platform = (typeof PLATFORMS)[number];

export type Edition = 'basic' | 'premium';

/** Per-app limits of SPEC.md §6; every field has the SPEC default. */
export interface AppLimits {
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  subscriptionCap: number;
  maxQueryUsers: number;
  maxSubscribePerCall: number;
  rateLimit: { count: number; windowMs: number };
  subscriptionRetentionMs: number;
}

export const DEFAULT_LIMITS: Readonly<AppLimits> = Object.freeze({
  heartbeatIntervalMs: 30_000,
  heartbeatTimeoutMs: 400_000,
  subscriptionCap: 200,
  maxQueryUsers: 500,
  maxSubscribePerCall: 100,
  rateLimit: Object.freeze({ count: 20, windowMs: 5_000 }),
  subscriptionRetentionMs: 600_000,
});

/** The part of an app's configuration that the user actor enforces. */
export interface AppPolicy {
  edition: Edition;
  userStatusEnabled: boolean;
  friendStatusAutoNotify: boolean;
  limits: AppLimits;
}

/** One logged-in connection of the user. */
export interface Device {
  /** Unique per connection, so a late DISCONNECT of a replaced connection is ignored. */
  connId: string;
  gatewayId: string;
  platform: Platform;
  /** Absolute epoch ms after which the device counts as dropped without heartbeats. */
  heartbeatDeadline: number;
}

export interface Subscription {
  userID: string;
  /** Epoch ms of the latest subscribe to this user; eviction takes the oldest first. */
  subscribedAt: number;
}

/**
 * A user's subscriptions, oldest first, as two lists of the same length: the i-th
 * subscription is `userIDs[i]`, subscribed at `subscribedAt[i]`. Packed rather than one
 * object per subscription, which cost about 60 bytes of heap each (with its boxed
 * time) and 20 more bytes of field names in every stored snapshot.
 */
export interface SubscriptionList {
  readonly userIDs: readonly string[];
  /** Epoch ms of the latest subscribe to each user; eviction takes the oldest first. */
  readonly subscribedAt: readonly number[];
}

/** The rate-limited call kinds of SPEC.md §3 (`setSelfStatus` and self-queries are free). */
export type RateLimitedCall = 'getUserStatus' | 'subscribeUserStatus' | 'unsubscribeUserStatus';

/** Epoch ms of the accepted calls inside the current window, oldest first. */
export type RateWindows = Partial<Record<RateLimitedCall, number[]>>;

export interface PresenceContext {
  sdkAppID: number;
  userID: string;
  devices: Record<string, Device>;
  /**
   * Device ids that left without `logout` and have not logged in or out since:
   * while any is here and no device is connected, the user is OFFLINE rather than UNLOGINED.
   */
  droppedDevices: readonly string[];
  customStatus: string;
  version: number;
  lastSeenAt: number;
  subscriptions: SubscriptionList;
  /** Absolute epoch ms at which retained subscriptions are cleared; 0 when nothing is retained. */
  retentionDeadline: number;
  /**
   * The app's `subscriptionRetentionMs` as of the latest device event, for the
   * transitions the actor makes on its own (heartbeat timeout), which carry no policy.
   */
  retentionMs: number;
  rateWindows: RateWindows;
  /**
   * Epoch ms of the user's last admin kick, 0 if never: UserSigs issued up to that second are
   * refused (70052). The actor keeps it, not a store the gateway reads before the login, so a
   * login and a kick are ordered by the one actor and a login that raced the kick cannot slip in.
   */
  revokedAt: number;
}

export interface PresenceInput {
  sdkAppID: number;
  userID: string;
}

/**
 * Every event from outside carries the policy of the app as it is now, so an admin
 * change applies at once. Time is not carried: the machine reads its injected clock.
 */
export interface Stamped {
  /** Correlates the actor's `reply` with the request; absent for events that need no reply. */
  requestId?: string;
  policy: AppPolicy;
}

export type PresenceEvent =
  | (Stamped & {
      type: 'LOGIN';
      deviceId: string;
      connId: string;
      gatewayId: string;
      platform: Platform;
      /** `TLS.time` of the verified UserSig; absent counts as issued before any kick. */
      sigTime?: number;
    })
  | (Stamped & { type: 'LOGOUT'; deviceId: string; connId: string })
  | (Stamped & { type: 'DISCONNECT'; deviceId: string; connId: string })
  | (Stamped & { type: 'HEARTBEAT'; deviceId: string; connId: string })
  | (Stamped & { type: 'SET_CUSTOM_STATUS'; deviceId: string; connId: string; customStatus: string })
  | (Stamped & { type: 'QUERY'; deviceId: string; connId: string; userIDs: string[] })
  | (Stamped & { type: 'SUBSCRIBE'; deviceId: string; connId: string; userIDs: string[] })
  | (Stamped & { type: 'UNSUBSCRIBE'; deviceId: string; connId: string; userIDs: string[] })
  | (Stamped & { type: 'KICK' })
  | { type: 'RESUME' };

export type PresenceEventType = PresenceEvent['type'];

/** The answer to a request, emitted by the actor while it handles the event. */
export type ActorReply =
  | { type: 'reply'; requestId: string; ok: true; evicted?: string[] }
  | { type: 'reply'; requestId: string; ok: false; code: number; desc: string; retryAfterMs?: number };

/**
 * Tells the host that a connection must be closed: replaced by a newer login (6208),
 * kicked by the admin API (70052), or timed out by the actor's heartbeat deadline
 * (6014: the device is no longer logged in; it may reconnect).
 */
export interface ActorKick {
  type: 'kick';
  connId: string;
  gatewayId: string;
  code: number;
}

export type ActorEmitted = ActorReply | ActorKick;
