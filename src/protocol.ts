/**
 * The device wire protocol over WebSocket (`/ws`), shared by the gateway and the
 * client SDK. Every frame is one msgpack-encoded object. See docs/protocol.md.
 * Free of Node-only modules: the browser SDK imports it.
 */
import type { Platform, UserStatus } from './actors/types.js';

export const PROTOCOL_VERSION = 1;

/** Frames larger than this are refused with 6017 and not decoded. */
export const MAX_FRAME_BYTES = 64 * 1024;

/** WebSocket close codes the server uses; the SDK reads them to decide whether to reconnect. */
export const CloseCode = {
  /** Another login with the same deviceId replaced this connection (6208). */
  KICKED_BY_SAME_DEVICE: 4001,
  /** The admin API kicked the user (70052); the UserSig is revoked. */
  KICKED_BY_ADMIN: 4002,
  /** No heartbeat or request within the app's heartbeatTimeoutMs. */
  HEARTBEAT_TIMEOUT: 4003,
  /** The node is shutting down; reconnect, possibly to another node. */
  GOING_AWAY: 1001,
} as const;

export type Operation =
  | 'login'
  | 'logout'
  | 'setSelfStatus'
  | 'getUserStatus'
  | 'subscribeUserStatus'
  | 'unsubscribeUserStatus';

export const OPERATIONS: readonly Operation[] = [
  'login',
  'logout',
  'setSelfStatus',
  'getUserStatus',
  'subscribeUserStatus',
  'unsubscribeUserStatus',
];

export interface LoginArgs {
  sdkAppID: number;
  userID: string;
  userSig: string;
  deviceId?: string;
  platform?: Platform;
}

export interface LoginResult {
  deviceId: string;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  status: UserStatus;
}

export interface ArgsOf {
  login: LoginArgs;
  logout: Record<string, never>;
  setSelfStatus: { customStatus?: string | null };
  getUserStatus: { userIDList: string[] };
  subscribeUserStatus: { userIDList: string[] };
  unsubscribeUserStatus: { userIDList?: string[] };
}

export interface ResultOf {
  login: LoginResult;
  logout: Record<string, never>;
  setSelfStatus: { status: UserStatus };
  getUserStatus: { statuses: UserStatus[] };
  /** `evicted`: users dropped from the list because the subscription cap was reached. */
  subscribeUserStatus: { evicted: string[] };
  unsubscribeUserStatus: Record<string, never>;
}

export interface WireError {
  code: number;
  desc: string;
  retryAfterMs?: number;
}

/** Client → server. */
export type ClientFrame =
  | { t: 'req'; id: number; op: Operation; args?: unknown }
  | { t: 'hb' };

/** Server → client. */
export type ServerFrame =
  | { t: 'res'; id: number; ok: true; result: unknown }
  | { t: 'res'; id: number; ok: false; error: WireError }
  /** Status changes of the user itself, its subscriptions and friends, oldest first. */
  | { t: 'push'; list: UserStatus[] }
  /** Sent right before the server closes the socket with a kick close code. */
  | { t: 'kicked'; error: WireError }
  | { t: 'hb' }
  /** A frame that could not be answered by id (malformed, too large). */
  | { t: 'err'; error: WireError };
