/**
 * Tencent-Cloud-IM-compatible UserSig (TLS ticket v2): issue tickets on your app server and
 * verify them in the presence cluster. Tickets issued here verify with Tencent's libraries and
 * vice versa.
 *
 * @example
 * ```ts
 * import { genUserSig, verifyUserSig, UserSigError } from 'presence-cluster/usersig';
 *
 * const sdkAppID = 1400000000;
 * const secretKey = process.env.PRESENCE_SECRET_KEY ?? 'replace-with-your-secret-key';
 *
 * const userSig = genUserSig({ sdkAppID, secretKey, userID: 'alice', expire: 7 * 86400 });
 *
 * try {
 *   const ticket = verifyUserSig({ userSig, sdkAppID, secretKey, userID: 'alice' });
 *   console.log(`alice may log in until ${new Date((ticket.time + ticket.expire) * 1000).toISOString()}`);
 * } catch (err) {
 *   if (err instanceof UserSigError) console.error(`login refused (${err.code}): ${err.message}`);
 *   else throw err;
 * }
 * ```
 *
 * @packageDocumentation
 */
export { genUserSig, verifyUserSig, decodeUserSig } from './usersig.js';
export type { GenUserSigOptions, VerifyUserSigOptions, UserSigTicket } from './usersig.js';
export { UserSigError } from './errors.js';
export type { UserSigErrorCode } from './errors.js';
