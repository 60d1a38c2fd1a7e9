/**
 * Tencent-Cloud-IM-compatible error codes for UserSig failures.
 *
 * - `70001`: the UserSig has expired.
 * - `70003`: the UserSig is malformed, its signature is wrong, or its time fields are implausible.
 * - `70013`: the UserSig was issued for a different userID.
 * - `70014`: the UserSig was issued for a different SDKAppID.
 * - `70052`: the UserSig was revoked (the user was kicked after it was issued).
 */
export type UserSigErrorCode = 70001 | 70003 | 70013 | 70014 | 70052;

/** An authentication failure caused by a UserSig; `code` is the Tencent Cloud IM error code. */
export class UserSigError extends Error {
  override readonly name = 'UserSigError';
  readonly code: number;

  constructor(code: UserSigErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
