/**
 * The public contract types of the client SDK (SPEC.md §3). Only types live here, so the file
 * costs nothing at run time and browsers and Node.js share it unchanged.
 */
import type { PresenceError } from '../errors.js';
import type { Platform, UserStatus } from '../actors/types.js';

/**
 * Where the client's connection stands:
 * - `connecting`: a socket is being opened and logged in (first login or a reconnect);
 * - `connected`: logged in; calls go out at once;
 * - `disconnected`: no usable connection; if still logged in, a reconnect is scheduled.
 *
 * During an outage every reconnect attempt shows as `connecting` followed by `disconnected`
 * when it fails, until one reaches `connected`.
 */
export type ConnectionState = 'connecting' | 'connected' | 'disconnected';

/**
 * Callbacks of a {@link PresenceClient}; implement only the ones you need. A listener that throws
 * does not stop the others or the client: the error is written to `console.error`.
 */
export interface PresenceListener {
  /**
   * Status changes, oldest first: the user's own (from every device), its subscriptions and,
   * with the app's friend switch on, its friends. A status not newer than the one already seen
   * for that user is never delivered. After a reconnect, the re-read statuses of subscribed users
   * that changed meanwhile arrive here too. Do not mutate the array.
   */
  onUserStatusChanged?(list: UserStatus[]): void;
  /**
   * The server ended this login: `6208` (another login with the same deviceId replaced it) or
   * `70052` (kicked by the admin API; the UserSig is revoked). The client is logged out and does
   * not reconnect; call `login` again, with a new UserSig after a 70052.
   */
  onKickedOffline?(error: PresenceError): void;
  /**
   * The UserSig expired after login: a re-login after a lost connection was refused with `70001`.
   * The client is logged out and does not reconnect; get a new UserSig from your server and call
   * `login` again. Called once, after `onConnectionStateChanged('disconnected')`. A `login` call
   * refused with 70001 does not call it: its promise rejects instead. (An extension of SPEC.md §3's
   * listeners, as in Tencent Cloud IM.)
   */
  onUserSigExpired?(): void;
  /** Called on every change of {@link ConnectionState}. */
  onConnectionStateChanged?(state: ConnectionState): void;
}

/**
 * The part of the standard WebSocket that the client uses; the browser's `WebSocket` and the
 * `ws` package's both fit.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (event: unknown) => void): void;
}

/** A WebSocket class, such as `globalThis.WebSocket` or `import { WebSocket } from 'ws'`. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Options of `new PresenceClient(options)`. */
export interface PresenceClientOptions {
  /**
   * The device endpoint, e.g. `ws://host:8080/ws` (`wss://` behind TLS): a load balancer's, or
   * a list of nodes' to try in turn: the client moves to the next one whenever a connection is
   * lost or cannot be opened, so it reconnects elsewhere when its node dies.
   */
  url: string | readonly string[];
  /** The app (tenant) to log in to. */
  sdkAppID: number;
  /**
   * The WebSocket class to use. Default: `globalThis.WebSocket` when defined (browsers, Node.js
   * >= 22), else the `ws` package, imported on first connect (Node.js 20).
   */
  WebSocket?: WebSocketConstructor;
  /**
   * How long a call may wait for its answer, including time spent queued while reconnecting,
   * and how long opening a socket may take. After it the call rejects with 6012. Default 10 000.
   */
  requestTimeoutMs?: number;
  /** Reconnect backoff: a random delay in `[0, min(maxDelayMs, initialDelayMs * 2^attempt))`. */
  reconnect?: {
    /** Default 500. */
    initialDelayMs?: number;
    /** Default 15 000. */
    maxDelayMs?: number;
  };
  /**
   * Heartbeat period in ms, overriding the one the server returns at login; `0` sends none
   * (only useful to test the server's heartbeat timeout).
   */
  heartbeatIntervalMs?: number;
}

/** Options of `login`. */
export interface LoginOptions {
  /**
   * Names this device (1–64 bytes of `[A-Za-z0-9_.:-]`, not `__proto__`). A second login with the same id
   * replaces the first, which gets `onKickedOffline` (6208). Default: the server picks a random
   * one at this client's first login without a deviceId; the client reuses it for its reconnects
   * and for every later login without one (any user, also after a logout, kick or expired
   * UserSig), so it stays one device.
   */
  deviceId?: string;
  /** Default `other`. */
  platform?: Platform;
}
