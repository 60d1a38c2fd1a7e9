import { genUserSig } from '../auth/index.js';
import { DEFAULT_MAX_VALIDITY_SECONDS } from '../auth/usersig.js';
import { isValidUserID } from '../gateway/validate.js';

// A UserSig the nodes would refuse (6017 for the userID, 70003 for the validity) is not printed.
export function runUserSig(values: { app?: string; secret?: string; user?: string; expire?: string }): number {
  const sdkAppID = Number(values.app);
  if (!values.app || !Number.isSafeInteger(sdkAppID) || sdkAppID <= 0) return usage('--app must be a positive integer sdkAppID');
  if (!values.secret) return usage('--secret is the app secret key');
  if (!isValidUserID(values.user)) return usage('--user is the userID to sign for: 1-32 characters of [A-Za-z0-9_.@-]');
  const expire = values.expire === undefined ? 86_400 : Number(values.expire);
  if (!Number.isSafeInteger(expire) || expire <= 0 || expire > DEFAULT_MAX_VALIDITY_SECONDS) {
    return usage(`--expire is a number of seconds, at most ${DEFAULT_MAX_VALIDITY_SECONDS} (180 days)`);
  }
  process.stdout.write(`${genUserSig({ sdkAppID, secretKey: values.secret, userID: values.user, expire })}\n`);
  return 0;
}

function usage(message: string): number {
  process.stderr.write(`presence usersig: ${message}\nusage: presence usersig --app ID --secret S --user U [--expire SECONDS]\n`);
  return 2;
}
