/**
 * presence-cluster: a self-hosted, horizontally scaling user-presence service.
 *
 * ```ts
 * import { PresenceNode } from 'presence-cluster';
 * const node = new PresenceNode({ port: 8080 });
 * await node.start();   // ws://localhost:8080/ws, /admin, /healthz
 * ```
 *
 * The device SDK is `presence-cluster/client`; UserSigs are `presence-cluster/usersig`.
 */
export { PresenceNode, type PresenceNodeOptions } from './cluster/node.js';
export { EmbeddedTransport } from './cluster/transport/embedded.js';
export type { Transport, KvBucket, KvEntry, KvOptions, Subscription } from './cluster/transport/types.js';
export { KvConflictError, NoRespondersError, RequestTimeoutError } from './cluster/transport/errors.js';
export type { AppConfig } from './cluster/stores/apps.js';
export { createPresenceMachine, UserActor, publicStatus, UserStatusType, DEFAULT_LIMITS } from './actors/index.js';
export type { UserStatus, AppLimits, AppPolicy, Platform, Edition, PresenceContext, PresenceEvent } from './actors/index.js';
export { ErrorCode, PresenceError } from './errors.js';
export { CloseCode, MAX_FRAME_BYTES, type ClientFrame, type ServerFrame } from './protocol.js';
