/**
 * The error codes of SPEC.md §3 and the one error type every call rejects with.
 * Shared by the server and the client SDK, so it must stay free of Node-only modules.
 */

export const ErrorCode = {
  REQUEST_TIMEOUT: 6012,
  NOT_LOGGED_IN: 6014,
  INVALID_PARAMETERS: 6017,
  KICKED_BY_SAME_DEVICE: 6208,
  RATE_LIMITED: 7008,
  EDITION_NOT_SUPPORTED: 7013,
  USER_STATUS_DISABLED: 72001,
  USERSIG_EXPIRED: 70001,
  USERSIG_INVALID: 70003,
  USERSIG_USER_MISMATCH: 70013,
  USERSIG_APP_MISMATCH: 70014,
  UNKNOWN_SDKAPPID: 70020,
  USERSIG_REVOKED: 70052,
  INTERNAL_ERROR: 70500,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** What every SDK call rejects with and what the server sends for a refused request. */
export class PresenceError extends Error {
  readonly code: number;
  readonly desc: string;
  readonly retryAfterMs?: number;

  constructor(code: number, desc: string, retryAfterMs?: number, options?: ErrorOptions) {
    super(`${code}: ${desc}`, options);
    this.name = 'PresenceError';
    this.code = code;
    this.desc = desc;
    if (retryAfterMs !== undefined) this.retryAfterMs = retryAfterMs;
  }

  /** The wire form: `{ code, desc, retryAfterMs? }`. */
  toJSON(): { code: number; desc: string; retryAfterMs?: number } {
    return this.retryAfterMs === undefined
      ? { code: this.code, desc: this.desc }
      : { code: this.code, desc: this.desc, retryAfterMs: this.retryAfterMs };
  }
}

export const invalidParameters = (desc: string): PresenceError =>
  new PresenceError(ErrorCode.INVALID_PARAMETERS, desc);
