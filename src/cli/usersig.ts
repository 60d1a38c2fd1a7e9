import { genUserSig } from '../auth/index.js';

export function runUserSig(values: { app?: string; secret?: string; user?: string; expire?: string }): number {
  const sdkAppID = Number(values.app);
  if (!values.app || !Number.isSafeInteger(sdkAppID) || sdkAppID <= 0) return usage('--app must be a positive integer sdkAppID');
  if (!values.secret) return usage('--secret is the app secret key');
  if (!values.user) return usage('--user is the userID to sign for');
  const expire = values.expire === undefined ? 86_400 : Number(values.expire);
  if (!Number.isSafeInteger(expire) || expire <= 0) return usage('--expire is a number of seconds');
  process.stdout.write(`${genUserSig({ sdkAppID, secretKey: values.secret, userID: values.user, expire })}\n`);
  return 0;
}

function usage(message: string): number {
  process.stderr.write(`presence usersig: ${message}\nusage: presence usersig --app ID --secret S --user U [--expire SECONDS]\n`);
  return 2;
}
