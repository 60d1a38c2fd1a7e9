/**
 * `presence-cluster/client`: the presence SDK for Node.js >= 20 and browsers (SPEC.md §3).
 *
 * @example
 * ```ts
 * import { PresenceClient, UserStatusType, type UserStatus } from 'presence-cluster/client';
 * import { genUserSig } from 'presence-cluster/usersig';
 *
 * // In production your server issues the UserSig; signing locally is for trying things out.
 * const userSig = genUserSig({ sdkAppID: 1400000001, secretKey: process.env.PRESENCE_SECRET!, userID: 'alice' });
 * const client = new PresenceClient({ url: 'ws://localhost:8080/ws', sdkAppID: 1400000001 });
 * client.addListener({
 *   onUserStatusChanged(list: UserStatus[]) {
 *     for (const s of list) console.log(s.userID, s.statusType === UserStatusType.ONLINE ? 'online' : 'away', s.customStatus);
 *   },
 *   onKickedOffline(error) {
 *     console.log('logged in elsewhere or kicked:', error.code);
 *   },
 *   onUserSigExpired() {
 *     console.log('UserSig expired: get a new one from your server and call login again');
 *   },
 *   onConnectionStateChanged(state) {
 *     console.log('connection', state);
 *   },
 * });
 *
 * await client.login('alice', userSig, { deviceId: 'alice-laptop', platform: 'web' });
 * await client.setSelfStatus({ customStatus: 'listening to music' });
 * console.log(await client.getUserStatus(['bob']));
 * await client.subscribeUserStatus(['bob', 'carol']);
 * await client.unsubscribeUserStatus(['carol']);
 * await client.logout();
 * ```
 *
 * Every call rejects with a {@link PresenceError} (`code`, `desc`, `retryAfterMs?`). The client
 * sends heartbeats itself and, after a lost connection, reconnects with jittered exponential
 * backoff, logs in again with the same UserSig and deviceId, and re-reads the statuses of its
 * subscriptions to deliver what changed meanwhile. Calls made while reconnecting are queued
 * until logged in again or until `requestTimeoutMs` (6012).
 *
 * In Node.js 20, which has no global WebSocket, the `ws` package is loaded on first connect;
 * pass `WebSocket` in the options to use another implementation.
 */
export { PresenceClient } from './PresenceClient.js';
export { PresenceError, ErrorCode } from '../errors.js';
export { UserStatusType } from '../actors/types.js';
export type { UserStatus, Platform } from '../actors/types.js';
export type {
  ConnectionState,
  LoginOptions,
  PresenceClientOptions,
  PresenceListener,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
