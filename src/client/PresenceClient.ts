/**
 * The public client (SPEC.md §3): shapes the calls, delivers statuses to listeners newest-only,
 * and remembers the subscriptions a reconnect must re-read. The socket, login, heartbeats,
 * queueing and reconnects live in {@link Connection}.
 */
import type { UserStatus } from '../actors/types.js';
import { ErrorCode, PresenceError } from '../errors.js';
import type { ArgsOf, LoginArgs } from '../protocol.js';
import { DEFAULT_BACKOFF } from './backoff.js';
import { Connection } from './connection.js';
import { ListenerSet } from './listeners.js';
import { SubscribedUsers } from './subscribedUsers.js';
import type { ConnectionState, LoginOptions, PresenceClientOptions, PresenceListener } from './types.js';
import { VersionTracker } from './versionTracker.js';

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/** Ids per getUserStatus call of the reconnect re-read, well inside the server's maxQueryUsers. */
const REREAD_CHUNK = 100;

/**
 * A presence client: one device of one user. See the `presence-cluster/client` module
 * documentation for a full example.
 *
 * Every call returns a promise that rejects with a {@link PresenceError}. Calls other than
 * `login` reject with 6014 before login. While the connection is being re-established, calls
 * are queued and sent once the client is logged in again; `requestTimeoutMs` runs from the moment
 * a call is made, so one that waits too long rejects with 6012. Calls already sent when the
 * connection drops reject with 6012 at once, since whether the server applied them is unknown.
 */
export class PresenceClient {
  private readonly listeners = new ListenerSet();
  private readonly versions = new VersionTracker();
  private readonly subscribed = new SubscribedUsers();
  private readonly connection: Connection;
  private readonly sdkAppID: number;
  private loginInProgress = false;

  constructor(options: PresenceClientOptions) {
    const urls = typeof options.url === 'string' ? [options.url] : options.url;
    if (!Array.isArray(urls) || urls.length === 0 || urls.some((url) => typeof url !== 'string' || url === '')) {
      throw new TypeError('options.url is required: a URL or a non-empty array of URLs');
    }
    if (!Number.isInteger(options.sdkAppID)) throw new TypeError('options.sdkAppID must be an integer');
    this.sdkAppID = options.sdkAppID;
    this.connection = new Connection(
      {
        urls: [...urls],
        WebSocket: options.WebSocket,
        requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
        // Not a spread: an option given as `undefined` must keep its default, not become NaN delays.
        backoff: {
          initialDelayMs: options.reconnect?.initialDelayMs ?? DEFAULT_BACKOFF.initialDelayMs,
          maxDelayMs: options.reconnect?.maxDelayMs ?? DEFAULT_BACKOFF.maxDelayMs,
        },
        heartbeatIntervalMs: options.heartbeatIntervalMs,
      },
      {
        onPush: (list) => this.emitNewer(list),
        onKicked: (error) => this.listeners.emit('onKickedOffline', error),
        onUserSigExpired: () => this.listeners.emit('onUserSigExpired'),
        onStateChanged: (state) => this.listeners.emit('onConnectionStateChanged', state),
        onReconnected: (status) => {
          // Checked as a push's fields are not: the login answer is only checked for its deviceId.
          if (typeof status?.userID === 'string' && typeof status.version === 'number') this.emitNewer([status]);
          void this.rereadSubscriptions();
        },
      },
    );
  }

  /** Adds a listener; adding the same object twice has no effect. */
  addListener(listener: PresenceListener): void {
    this.listeners.add(listener);
  }

  removeListener(listener: PresenceListener): void {
    this.listeners.remove(listener);
  }

  /** The logged-in userID (also while reconnecting), or undefined. */
  getLoginUser(): string | undefined {
    return this.connection.loginUser;
  }

  getConnectionState(): ConnectionState {
    return this.connection.connectionState;
  }

  /**
   * Connects and logs in. Logging in again as the logged-in user resolves at once; as another
   * user, or while a login is in progress, it rejects with 6017 (call `logout` first). On failure
   * the socket is closed and the promise rejects with the server's error (70001, 70003, 70013,
   * 70014, 70020, 70052, 6017) or 6012 when the server cannot be reached in time.
   */
  async login(userID: string, userSig: string, options: LoginOptions | null = {}): Promise<void> {
    const current = this.connection.loginUser;
    // Checked first: while logged out, `current === userID` would let `undefined` through.
    if (typeof userID !== 'string') throw new PresenceError(ErrorCode.INVALID_PARAMETERS, 'userID must be a string');
    if (this.loginInProgress) throw new PresenceError(ErrorCode.INVALID_PARAMETERS, 'a login is already in progress');
    if (current === userID) return;
    if (current !== undefined) {
      throw new PresenceError(ErrorCode.INVALID_PARAMETERS, `already logged in as ${current}; call logout() first`);
    }
    const args: LoginArgs = { sdkAppID: this.sdkAppID, userID, userSig };
    // `null` is "omitted" (docs/decisions.md): the server picks the deviceId, or the platform is `other`.
    if (options?.deviceId != null) args.deviceId = options.deviceId;
    if (options?.platform != null) args.platform = options.platform;
    // Cleared before the login goes out, so no push of the new login can be mistaken for stale.
    this.versions.clear();
    this.subscribed.clear();
    this.loginInProgress = true;
    try {
      await this.connection.login(args);
    } finally {
      this.loginInProgress = false;
    }
  }

  /** Sets the custom status (at most 256 UTF-8 bytes); `''`, `null` or no value clears it. */
  async setSelfStatus(status: { customStatus?: string | null } | null = {}): Promise<void> {
    const args: ArgsOf['setSelfStatus'] = status?.customStatus === undefined ? {} : { customStatus: status.customStatus };
    // The answer's status is not recorded as seen: the push of that same version must still
    // reach the listeners, as SPEC §3 notifies the caller's own devices too.
    await this.connection.request('setSelfStatus', args);
  }

  /**
   * The statuses of `userIDList` (at most 500), in that order; unknown users come back UNLOGINED.
   * The versions are remembered, so a later push of the same version is not delivered again;
   * a user whose status was already seen newer (a push overtook the answer) gets that status.
   */
  async getUserStatus(userIDList: string[]): Promise<UserStatus[]> {
    const { statuses } = await this.connection.request('getUserStatus', { userIDList });
    return this.versions.newestOf(statuses);
  }

  /** Subscribes to the status changes of `userIDList` (at most 100 per call). */
  async subscribeUserStatus(userIDList: string[]): Promise<void> {
    const { evicted } = await this.connection.request('subscribeUserStatus', { userIDList });
    this.subscribed.added(userIDList, Array.isArray(evicted) ? evicted : []);
  }

  /** Unsubscribes from `userIDList`; `[]` or no list ends every subscription. */
  async unsubscribeUserStatus(userIDList?: string[] | null): Promise<void> {
    const list = userIDList ?? [];
    await this.connection.request('unsubscribeUserStatus', list.length === 0 ? {} : { userIDList: list });
    this.subscribed.removed(list);
  }

  /**
   * Logs out and closes the socket; no reconnect follows. The client is logged out locally even
   * when the server cannot be told: the promise then rejects (usually 6012) and the server counts
   * this device as dropped (OFFLINE) rather than logged out.
   */
  async logout(): Promise<void> {
    const generation = this.connection.generation;
    let failure: unknown;
    try {
      await this.connection.request('logout', {});
    } catch (err) {
      failure = err;
    }
    if (this.connection.generation === generation && this.connection.loginUser !== undefined) {
      this.connection.teardown(new PresenceError(ErrorCode.NOT_LOGGED_IN, 'logged out'));
    }
    if (failure !== undefined) throw failure;
  }

  /**
   * Closes the socket without logging out (the server counts a drop: OFFLINE), stops
   * reconnecting and rejects pending calls with 6012 `client closed`. Idempotent; `login` may be
   * called again afterwards.
   */
  close(): void {
    this.connection.teardown(new PresenceError(ErrorCode.REQUEST_TIMEOUT, 'client closed'));
  }

  /** After a reconnect: re-reads every subscribed user and delivers what changed meanwhile. */
  private async rereadSubscriptions(): Promise<void> {
    const generation = this.connection.generation;
    for (const userIDList of this.subscribed.chunks(REREAD_CHUNK)) {
      if (this.connection.generation !== generation || this.connection.connectionState !== 'connected') return;
      try {
        const { statuses } = await this.connection.request('getUserStatus', { userIDList });
        if (this.connection.generation === generation) this.emitNewer(statuses);
      } catch {
        // E.g. rate-limited or lost again: pushes keep flowing and the next reconnect re-reads.
        return;
      }
    }
  }

  private emitNewer(list: UserStatus[]): void {
    const fresh = this.versions.acceptNewer(list);
    if (fresh.length > 0) this.listeners.emit('onUserStatusChanged', fresh);
  }
}
