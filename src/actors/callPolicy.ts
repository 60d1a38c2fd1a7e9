import { ErrorCode } from '../errors.js';
import { admit } from './rateWindow.js';
import type { AppPolicy, PresenceContext, RateLimitedCall } from './types.js';

export interface Refusal {
  code: number;
  desc: string;
  retryAfterMs?: number;
}

/** The byte limit of a custom status (SPEC.md §2). */
export const CUSTOM_STATUS_MAX_BYTES = 256;

export type StatusCall =
  | { call: 'getUserStatus'; userIDs: readonly string[] }
  | { call: 'subscribeUserStatus'; userIDs: readonly string[] }
  | { call: 'unsubscribeUserStatus'; userIDs: readonly string[] };

/** `getUserStatus` of nobody but oneself is free of gating and rate limits. */
export function isSelfQuery(context: PresenceContext, call: StatusCall): boolean {
  return call.call === 'getUserStatus' && call.userIDs.length > 0 && call.userIDs.every((id) => id === context.userID);
}

/**
 * Decides whether a status call is refused, in SPEC order: edition (7013), switch
 * (72001), parameters (6017), then the rate window (7008). Only an admitted call
 * enters the rate window, so a refused one counts nothing.
 */
export function refusal(context: PresenceContext, call: StatusCall, policy: AppPolicy, now: number): Refusal | undefined {
  if (isSelfQuery(context, call)) return undefined;
  const gated = gatingRefusal(context.sdkAppID, call.call, policy);
  if (gated) return gated;
  const invalid = invalidIds(context, call, policy);
  if (invalid) return { code: ErrorCode.INVALID_PARAMETERS, desc: invalid };
  const decision = admit(context.rateWindows[call.call], now, policy.limits.rateLimit);
  if (!decision.allowed) {
    const { count, windowMs } = policy.limits.rateLimit;
    return {
      code: ErrorCode.RATE_LIMITED,
      desc: `${call.call} is limited to ${count} calls per ${windowMs} ms; retry in ${decision.retryAfterMs} ms`,
      retryAfterMs: decision.retryAfterMs,
    };
  }
  return undefined;
}

/**
 * Edition (7013) and switch (72001) gating of a status call. The gateway asks it
 * too, before it even parses the id list, so that the refusal order holds there.
 */
export function gatingRefusal(sdkAppID: number, call: StatusCall['call'], policy: AppPolicy): Refusal | undefined {
  if (policy.edition !== 'premium') {
    return { code: ErrorCode.EDITION_NOT_SUPPORTED, desc: `${call} needs the premium edition; this app is ${policy.edition}` };
  }
  if (!policy.userStatusEnabled) {
    return { code: ErrorCode.USER_STATUS_DISABLED, desc: `the user-status switch (userStatusEnabled) is off for app ${sdkAppID}` };
  }
  return undefined;
}

function invalidIds(context: PresenceContext, call: StatusCall, policy: AppPolicy): string | undefined {
  const { maxQueryUsers, maxSubscribePerCall } = policy.limits;
  const n = call.userIDs.length;
  switch (call.call) {
    case 'getUserStatus':
      if (n === 0) return 'getUserStatus needs at least one userID';
      if (n > maxQueryUsers) return `getUserStatus takes at most ${maxQueryUsers} userIDs, got ${n}`;
      return undefined;
    case 'subscribeUserStatus':
      if (n === 0) return 'subscribeUserStatus needs at least one userID';
      if (n > maxSubscribePerCall) return `subscribeUserStatus takes at most ${maxSubscribePerCall} userIDs, got ${n}`;
      if (call.userIDs.includes(context.userID)) return 'a user cannot subscribe to its own status; its devices get it anyway';
      return undefined;
    case 'unsubscribeUserStatus':
      if (n > maxSubscribePerCall) return `unsubscribeUserStatus takes at most ${maxSubscribePerCall} userIDs, got ${n}`;
      return undefined;
  }
}

/** The rate windows after an admitted call: `refusal` returned undefined for it. */
export function recordCall(
  windows: PresenceContext['rateWindows'],
  call: RateLimitedCall,
  now: number,
  policy: AppPolicy,
): PresenceContext['rateWindows'] {
  const decision = admit(windows[call], now, policy.limits.rateLimit);
  return decision.allowed ? { ...windows, [call]: decision.window } : windows;
}
