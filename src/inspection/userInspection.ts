import type { AppLimits, PresenceContext, RateLimitedCall, UserStatus } from '../actors/types.js';
import { publicStatus } from '../actors/publicStatus.js';
import { prune } from '../actors/rateWindow.js';
import { subscriptionEntries } from '../actors/subscriptions.js';

/** Everything the dashboard shows about one user actor, as plain JSON. */
export interface UserInspection {
  sdkAppID: number;
  userID: string;
  /** The machine's state value, e.g. `"online"` or `{ "offline": "retainingSubscriptions" }`. */
  state: unknown;
  /** The state path as dotted ids, e.g. `["offline", "offline.retainingSubscriptions"]`: what the chart highlights. */
  activeStates: string[];
  status: UserStatus;
  devices: Array<{ deviceId: string; platform: string; gatewayId: string; heartbeatDeadline: number; msLeft: number }>;
  droppedDevices: string[];
  /** In eviction order: the first one is the next evicted when the list is full. */
  subscriptions: Array<{ userID: string; subscribedAt: number }>;
  subscriptionCap: number;
  rateWindows: Array<{ call: RateLimitedCall; used: number; limit: number; windowMs: number; oldestAt: number | null }>;
  deadlines: Array<{ what: string; at: number; msLeft: number }>;
  /** The last admin kick: UserSigs issued up to that second are refused (70052); null if never kicked. */
  revokedAt: number | null;
  /** Its webhook outbox, when the app has a callback URL: events waiting, and why the last attempt failed. */
  webhooks?: { pending: number; failures?: number; lastError?: string; nextAttemptAt?: number };
  /** True when the actor is running on a node; false when read from its persisted state only. */
  resident: boolean;
  inspectedAt: number;
}

const CALLS: RateLimitedCall[] = ['getUserStatus', 'subscribeUserStatus', 'unsubscribeUserStatus'];

/** Dotted ids of every active state node of a state value: `{ offline: 'idle' }` → `offline`, `offline.idle`. */
export function activeStates(value: unknown, prefix = ''): string[] {
  if (typeof value === 'string') return [prefix + value];
  if (!value || typeof value !== 'object') return [];
  return Object.entries(value as Record<string, unknown>).flatMap(([key, child]) => [
    prefix + key,
    ...activeStates(child, `${prefix}${key}.`),
  ]);
}

/** A pure reading of an actor's state at `now`: nothing is changed or re-armed. */
export function inspectUser(
  context: PresenceContext,
  state: unknown,
  limits: AppLimits,
  now: number,
  resident: boolean,
): UserInspection {
  const devices = Object.entries(context.devices)
    .map(([deviceId, d]) => ({
      deviceId,
      platform: d.platform,
      gatewayId: d.gatewayId,
      heartbeatDeadline: d.heartbeatDeadline,
      msLeft: Math.max(0, d.heartbeatDeadline - now),
    }))
    .sort((a, b) => a.deviceId.localeCompare(b.deviceId));
  const deadlines = devices.map((d) => ({ what: `heartbeat timeout of device ${d.deviceId}`, at: d.heartbeatDeadline, msLeft: d.msLeft }));
  if (context.retentionDeadline > 0) {
    deadlines.push({ what: 'subscription retention ends', at: context.retentionDeadline, msLeft: Math.max(0, context.retentionDeadline - now) });
  }
  deadlines.sort((a, b) => a.at - b.at);
  const { count, windowMs } = limits.rateLimit;
  return {
    sdkAppID: context.sdkAppID,
    userID: context.userID,
    state,
    activeStates: activeStates(state),
    status: publicStatus(context),
    devices,
    droppedDevices: [...context.droppedDevices],
    // The list's own order, which eviction follows; sorting by time would not when clocks of nodes differ.
    subscriptions: subscriptionEntries(context.subscriptions),
    subscriptionCap: limits.subscriptionCap,
    rateWindows: CALLS.map((call) => {
      const window = prune(context.rateWindows[call], now, windowMs);
      return { call, used: window.length, limit: count, windowMs, oldestAt: window[0] ?? null };
    }),
    deadlines,
    revokedAt: context.revokedAt || null,
    resident,
    inspectedAt: now,
  };
}
