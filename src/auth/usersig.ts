import { createHmac, timingSafeEqual } from 'node:crypto';
import { deflateSync, inflateSync } from 'node:zlib';
import { UserSigError } from './errors.js';

const TICKET_VERSION = '2.0';
const DEFAULT_EXPIRE_SECONDS = 86_400;
const DEFAULT_MAX_CLOCK_SKEW_SECONDS = 300;
export const DEFAULT_MAX_VALIDITY_SECONDS = 180 * 86_400;
const MAX_USERSIG_CHARS = 4096;
const MAX_TICKET_JSON_BYTES = 16 * 1024;
const USERSIG_ALPHABET = /^[A-Za-z0-9*-]+_{0,2}$/;

export interface GenUserSigOptions {
  sdkAppID: number;
  secretKey: string;
  userID: string;
  /** Validity in seconds from the issue time; default 86400 (one day). */
  expire?: number;
  /** Issue time in epoch milliseconds; default `Date.now()`. */
  now?: number;
}

/** The fields of a decoded UserSig (TLS ticket v2). Times are in seconds. */
export interface UserSigTicket {
  identifier: string;
  sdkAppID: number;
  /** Issue time, epoch seconds. */
  time: number;
  /** Validity in seconds, counted from `time`. */
  expire: number;
  /** Base64 user buffer, present only when the issuer signed one. */
  userbuf?: string;
}

export interface VerifyUserSigOptions {
  userSig: string;
  sdkAppID: number;
  userID: string;
  secretKey: string;
  /** Current time in epoch milliseconds; default `Date.now()`. */
  now?: number;
  /** How far `TLS.time` may lie in the future, in seconds; default 300. */
  maxClockSkewSeconds?: number;
  /** Longest accepted `TLS.expire`, in seconds; default 15552000 (180 days). */
  maxValiditySeconds?: number;
  /** Epoch milliseconds of the user's last revocation (kick); see {@link verifyUserSig}. */
  revokedAtMs?: number;
}

interface SignedTicket extends UserSigTicket {
  sig: string;
}

/**
 * Issues a UserSig exactly as Tencent's `tls-sig-api-v2` does: an HMAC-SHA256 (keyed with the
 * UTF-8 secret key) over the identifier, SDKAppID, time and expire, put in a JSON ticket that is
 * zlib-deflated and base64-encoded with `+`, `/`, `=` replaced by `*`, `-`, `_`.
 *
 * @throws TypeError or RangeError when an option is missing or out of range.
 */
export function genUserSig(opts: GenUserSigOptions): string {
  const { sdkAppID, secretKey, userID } = opts;
  const expire = opts.expire ?? DEFAULT_EXPIRE_SECONDS;
  const now = opts.now ?? Date.now();
  requirePositiveInteger('sdkAppID', sdkAppID);
  requireNonEmptyString('secretKey', secretKey);
  requireNonEmptyString('userID', userID);
  requirePositiveInteger('expire', expire);
  requireTime('now', now);
  const time = Math.floor(now / 1000);
  const sig = hmacBase64(secretKey, { identifier: userID, sdkAppID, time, expire });
  const json = JSON.stringify({
    'TLS.ver': TICKET_VERSION,
    'TLS.identifier': userID,
    'TLS.sdkappid': sdkAppID,
    'TLS.expire': expire,
    'TLS.time': time,
    'TLS.sig': sig,
  });
  return toUserSigAlphabet(deflateSync(Buffer.from(json, 'utf8')).toString('base64'));
}

/**
 * Parses a UserSig without checking its signature or times. Use {@link verifyUserSig} to
 * authenticate; this is for inspecting a ticket (for example to log its identifier).
 *
 * @throws UserSigError 70003 when the input is not a well-formed TLS ticket v2 (not a string,
 * longer than 4096 characters, outside the UserSig base64 alphabet, not zlib data, inflating to
 * more than 16 KiB, not JSON, missing or ill-typed fields, or `TLS.ver` other than `"2.0"`).
 * Never throws anything else.
 */
export function decodeUserSig(userSig: string): UserSigTicket {
  const { sig: _sig, ...ticket } = decodeSignedTicket(userSig);
  return ticket;
}

/**
 * Authenticates a UserSig for `userID` in app `sdkAppID` and returns its decoded ticket.
 *
 * Checks, in this order, throwing {@link UserSigError} with the first failing code:
 * 1. the ticket decodes (70003, see {@link decodeUserSig});
 * 2. `TLS.sdkappid` equals `sdkAppID` (70014);
 * 3. `TLS.identifier` equals `userID` (70013);
 * 4. `TLS.sig` matches, compared in constant time; `TLS.userbuf` is signed when present (70003);
 * 5. `TLS.time` is at most `maxClockSkewSeconds` in the future (70003);
 * 6. `TLS.expire` is at most `maxValiditySeconds` (70003);
 * 7. `now / 1000 <= TLS.time + TLS.expire`, i.e. not expired (70001);
 * 8. when `revokedAtMs` is set, `TLS.time > floor(revokedAtMs / 1000)` (70052).
 *
 * Revocation works at whole-second granularity on purpose: `TLS.time` has one-second resolution,
 * so a ticket issued in the same second as the revocation cannot be told apart from one issued just
 * before it and is revoked too. Issue the replacement ticket at least one second after the kick
 * (see `GenUserSigOptions.now`).
 *
 * @throws TypeError when `secretKey` is empty, since any ticket signed with an empty key would pass.
 * @throws RangeError when `now`, a limit or `revokedAtMs` is not a finite non-negative number: each
 * comparison with NaN is false, so such a value would silently accept expired or revoked tickets.
 */
export function verifyUserSig(opts: VerifyUserSigOptions): UserSigTicket {
  requireNonEmptyString('secretKey', opts.secretKey);
  const nowMs = requireTime('now', opts.now ?? Date.now());
  const maxClockSkew = requireTime('maxClockSkewSeconds', opts.maxClockSkewSeconds ?? DEFAULT_MAX_CLOCK_SKEW_SECONDS);
  const maxValidity = requireTime('maxValiditySeconds', opts.maxValiditySeconds ?? DEFAULT_MAX_VALIDITY_SECONDS);
  if (opts.revokedAtMs !== undefined) requireTime('revokedAtMs', opts.revokedAtMs);
  const { sig, ...ticket } = decodeSignedTicket(opts.userSig);

  if (ticket.sdkAppID !== opts.sdkAppID) {
    throw new UserSigError(
      70014,
      `UserSig was issued for SDKAppID ${ticket.sdkAppID}, not ${opts.sdkAppID}; issue it with this app's SDKAppID`,
    );
  }
  if (ticket.identifier !== opts.userID) {
    throw new UserSigError(
      70013,
      `UserSig was issued for userID ${JSON.stringify(ticket.identifier)}, not ${JSON.stringify(opts.userID)}; log in with the userID the UserSig was issued for`,
    );
  }
  if (!constantTimeEqual(sig, hmacBase64(opts.secretKey, ticket))) {
    throw new UserSigError(
      70003,
      'UserSig signature does not match; issue it with this app\'s secret key',
    );
  }
  const nowSeconds = nowMs / 1000;
  if (ticket.time > nowSeconds + maxClockSkew) {
    throw new UserSigError(
      70003,
      `UserSig is issued at ${isoSeconds(ticket.time)}, more than ${maxClockSkew}s in the future; check the issuing server's clock`,
    );
  }
  if (ticket.expire > maxValidity) {
    throw new UserSigError(
      70003,
      `UserSig validity of ${ticket.expire}s exceeds the maximum of ${maxValidity}s; issue it with a shorter expire`,
    );
  }
  if (nowSeconds > ticket.time + ticket.expire) {
    throw new UserSigError(
      70001,
      `UserSig expired at ${isoSeconds(ticket.time + ticket.expire)}; issue a new one`,
    );
  }
  const revoked = opts.revokedAtMs === undefined ? undefined : revocationOf(ticket.time, opts.revokedAtMs);
  if (revoked) throw revoked;
  return ticket;
}

/**
 * Rule 8 of {@link verifyUserSig} alone: whether a ticket issued at `ticketTime` (`TLS.time`,
 * epoch seconds) is revoked by a revocation at `revokedAtMs`. The user actor applies it at login.
 */
export const isRevokedBy = (ticketTime: number, revokedAtMs: number): boolean => ticketTime <= Math.floor(revokedAtMs / 1000);

/** The 70052 error of rule 8, or undefined if the ticket was issued after the revocation's second. */
export function revocationOf(ticketTime: number, revokedAtMs: number): UserSigError | undefined {
  if (!isRevokedBy(ticketTime, revokedAtMs)) return undefined;
  return new UserSigError(
    70052,
    `UserSig issued at ${isoSeconds(ticketTime)} was revoked at ${isoSeconds(Math.floor(revokedAtMs / 1000))}; issue a new one at least one second after the revocation`,
  );
}

function decodeSignedTicket(userSig: unknown): SignedTicket {
  if (typeof userSig !== 'string' || userSig.length === 0) {
    throw malformed('it must be a non-empty string');
  }
  if (userSig.length > MAX_USERSIG_CHARS) {
    throw malformed(`it is ${userSig.length} characters long, the maximum is ${MAX_USERSIG_CHARS}`);
  }
  if (!USERSIG_ALPHABET.test(userSig)) {
    throw malformed('it contains characters outside the UserSig base64 alphabet');
  }
  let json: string;
  try {
    const compressed = Buffer.from(fromUserSigAlphabet(userSig), 'base64');
    json = inflateSync(compressed, { maxOutputLength: MAX_TICKET_JSON_BYTES }).toString('utf8');
  } catch (cause) {
    throw malformed(`it is not zlib data or inflates to more than ${MAX_TICKET_JSON_BYTES} bytes`, cause);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (cause) {
    throw malformed('its content is not JSON', cause);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw malformed('its content is not a JSON object');
  }
  const fields = doc as Record<string, unknown>;
  const ver = fields['TLS.ver'];
  if (ver !== TICKET_VERSION) {
    throw malformed(`TLS.ver is ${JSON.stringify(ver)}, only "${TICKET_VERSION}" is supported`);
  }
  const ticket: SignedTicket = {
    identifier: stringField(fields, 'TLS.identifier'),
    sdkAppID: integerField(fields, 'TLS.sdkappid'),
    time: integerField(fields, 'TLS.time'),
    expire: integerField(fields, 'TLS.expire'),
    sig: stringField(fields, 'TLS.sig'),
  };
  const userbuf = fields['TLS.userbuf'];
  if (userbuf !== undefined) {
    if (typeof userbuf !== 'string') throw malformed('TLS.userbuf must be a string');
    ticket.userbuf = userbuf;
  }
  return ticket;
}

function stringField(fields: Record<string, unknown>, key: string): string {
  const value = fields[key];
  if (typeof value !== 'string' || value.length === 0) {
    throw malformed(`${key} must be a non-empty string`);
  }
  return value;
}

function integerField(fields: Record<string, unknown>, key: string): number {
  const value = fields[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw malformed(`${key} must be a non-negative integer`);
  }
  return value;
}

function hmacBase64(secretKey: string, ticket: UserSigTicket): string {
  let content =
    `TLS.identifier:${ticket.identifier}\n` +
    `TLS.sdkappid:${ticket.sdkAppID}\n` +
    `TLS.time:${ticket.time}\n` +
    `TLS.expire:${ticket.expire}\n`;
  if (ticket.userbuf !== undefined) content += `TLS.userbuf:${ticket.userbuf}\n`;
  return createHmac('sha256', Buffer.from(secretKey, 'utf8')).update(content, 'utf8').digest('base64');
}

function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}

function toUserSigAlphabet(base64: string): string {
  return base64.replace(/\+/g, '*').replace(/\//g, '-').replace(/=/g, '_');
}

function fromUserSigAlphabet(userSig: string): string {
  return userSig.replace(/\*/g, '+').replace(/-/g, '/').replace(/_/g, '=');
}

function malformed(reason: string, cause?: unknown): UserSigError {
  const message = `UserSig is malformed: ${reason}; pass the UserSig exactly as issued`;
  return new UserSigError(70003, message, cause === undefined ? undefined : { cause });
}

function isoSeconds(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? `${seconds}s since the epoch` : date.toISOString();
}

function requirePositiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
}

function requireTime(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new RangeError(`${name} must be a finite non-negative number, got ${value}`);
  }
  return value;
}

function requireNonEmptyString(name: string, value: string): void {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`${name} must be a non-empty string`);
  }
}
