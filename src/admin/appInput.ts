import type { AppLimits } from '../actors/types.js';
import { withDefaultLimits, type AppConfig } from '../cluster/stores/apps.js';
import { invalidParameters } from '../errors.js';
import { isValidUserID } from '../gateway/validate.js';

/** Admin request bodies, validated before anything is stored. */

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const LIMIT_FIELDS = [
  'heartbeatIntervalMs',
  'heartbeatTimeoutMs',
  'subscriptionCap',
  'maxQueryUsers',
  'maxSubscribePerCall',
  'subscriptionRetentionMs',
] as const;

/** Upper bounds that keep one app from exhausting a node: the per-call work and the timers. */
const LIMIT_MAX: Record<(typeof LIMIT_FIELDS)[number], number> = {
  heartbeatIntervalMs: 24 * 3600_000,
  heartbeatTimeoutMs: 24 * 3600_000,
  subscriptionCap: 10_000,
  maxQueryUsers: 1_000,
  maxSubscribePerCall: 1_000,
  subscriptionRetentionMs: 7 * 24 * 3600_000,
};

export function parseSdkAppID(text: string): number {
  const id = Number(text);
  if (!/^[1-9][0-9]{0,14}$/.test(text) || !Number.isSafeInteger(id)) {
    throw invalidParameters(`sdkAppID must be a positive integer, got ${JSON.stringify(text)}`);
  }
  return id;
}

export function parseAppBody(sdkAppID: number, body: unknown, previous: AppConfig | undefined): AppConfig {
  if (!isRecord(body)) throw invalidParameters('the body must be a JSON object');
  // Only an absent field keeps the stored value: `null` is refused as it is in `limits`, not read as "keep".
  const secretKey = body.secretKey === undefined ? previous?.secretKey : body.secretKey;
  if (typeof secretKey !== 'string' || secretKey.length < 16 || secretKey.length > 256) {
    throw invalidParameters('secretKey must be a string of 16 to 256 characters');
  }
  const edition = body.edition === undefined ? (previous?.edition ?? 'basic') : body.edition;
  if (edition !== 'basic' && edition !== 'premium') throw invalidParameters(`edition must be 'basic' or 'premium'`);
  const flag = (name: 'userStatusEnabled' | 'friendStatusAutoNotify'): boolean => {
    const value = body[name] === undefined ? (previous?.[name] ?? false) : body[name];
    if (typeof value !== 'boolean') throw invalidParameters(`${name} must be true or false`);
    return value;
  };
  const callbackUrl = parseCallbackUrl(body.callbackUrl === undefined ? previous?.callbackUrl : body.callbackUrl);
  return {
    sdkAppID,
    secretKey,
    edition,
    userStatusEnabled: flag('userStatusEnabled'),
    friendStatusAutoNotify: flag('friendStatusAutoNotify'),
    limits: parseLimits(body.limits, previous?.limits),
    ...(callbackUrl ? { callbackUrl } : {}),
  };
}

/** An http(s) URL of at most 2048 characters; `null` or `""` removes the webhook. */
function parseCallbackUrl(value: unknown): string | undefined {
  if (value === null || value === '' || value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > 2048) throw invalidParameters('callbackUrl must be an http(s) URL of at most 2048 characters');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidParameters(`callbackUrl ${value} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidParameters('callbackUrl must use http or https');
  return url.toString();
}

function parseLimits(value: unknown, previous: AppLimits | undefined): AppLimits {
  if (value === undefined) return previous ?? withDefaultLimits(undefined);
  if (!isRecord(value)) throw invalidParameters('limits must be an object');
  const limits: Partial<AppLimits> = { ...previous };
  for (const field of LIMIT_FIELDS) {
    const v = value[field];
    if (v === undefined) continue;
    limits[field] = positiveInt(`limits.${field}`, v, LIMIT_MAX[field]);
  }
  if (value.rateLimit !== undefined) {
    if (!isRecord(value.rateLimit)) throw invalidParameters('limits.rateLimit must be { count, windowMs }');
    const base = previous?.rateLimit ?? { count: 20, windowMs: 5000 };
    limits.rateLimit = {
      count: value.rateLimit.count === undefined ? base.count : positiveInt('limits.rateLimit.count', value.rateLimit.count, 10_000),
      windowMs:
        value.rateLimit.windowMs === undefined ? base.windowMs : positiveInt('limits.rateLimit.windowMs', value.rateLimit.windowMs, 3600_000),
    };
  }
  const parsed = withDefaultLimits(limits);
  if (parsed.heartbeatIntervalMs >= parsed.heartbeatTimeoutMs) {
    throw invalidParameters('limits.heartbeatIntervalMs must be shorter than limits.heartbeatTimeoutMs');
  }
  return parsed;
}

function positiveInt(name: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0 || value > max) {
    throw invalidParameters(`${name} must be an integer from 1 to ${max}`);
  }
  return value;
}

/** At most this many pairs in one friends call. */
export const MAX_FRIEND_PAIRS = 10_000;

export function parseFriendsBody(body: unknown): { add: Array<[string, string]>; remove: Array<[string, string]> } {
  if (!isRecord(body)) throw invalidParameters('the body must be { add?: [[a, b], ...], remove?: [[a, b], ...] }');
  const pairs = (name: 'add' | 'remove'): Array<[string, string]> => {
    const value = body[name];
    if (value === undefined) return [];
    if (!Array.isArray(value) || value.length > MAX_FRIEND_PAIRS) {
      throw invalidParameters(`${name} must be an array of at most ${MAX_FRIEND_PAIRS} [userID, userID] pairs`);
    }
    return value.map((pair, i) => {
      if (!Array.isArray(pair) || pair.length !== 2 || !isValidUserID(pair[0]) || !isValidUserID(pair[1]) || pair[0] === pair[1]) {
        throw invalidParameters(`${name}[${i}] must be a pair of two different valid userIDs`);
      }
      return [pair[0], pair[1]] as [string, string];
    });
  };
  return { add: pairs('add'), remove: pairs('remove') };
}

export function publicApp(app: AppConfig): Omit<AppConfig, 'secretKey'> {
  const { secretKey: _secret, ...rest } = app;
  return rest;
}
