/**
 * The logged-in connection behind a PresenceClient: opens the socket, logs in, sends heartbeats,
 * queues calls while disconnected, reconnects with backoff and logs in again with the same
 * credentials and deviceId, and keeps a deviceId the server picked for later logins. It knows
 * nothing about statuses or listeners: it reports pushes, kicks, an expired UserSig, state changes
 * and completed reconnects through {@link ConnectionHooks}.
 */
import type { UserStatus } from '../actors/types.js';
import { ErrorCode, PresenceError } from '../errors.js';
import { CloseCode, type ArgsOf, type ClientFrame, type LoginArgs, type LoginResult, type Operation, type ResultOf, type ServerFrame } from '../protocol.js';
import type { BackoffPolicy } from './backoff.js';
import { PendingRequests, toPresenceError } from './pending.js';
import { ReconnectScheduler } from './reconnectScheduler.js';
import { FrameSocket } from './socket.js';
import type { ConnectionState, WebSocketConstructor } from './types.js';

/** A failed re-login with one of these cannot succeed by retrying: stop reconnecting. */
const AUTH_ERRORS: ReadonlySet<number> = new Set([
  ErrorCode.USERSIG_EXPIRED, ErrorCode.USERSIG_INVALID, ErrorCode.USERSIG_USER_MISMATCH,
  ErrorCode.USERSIG_APP_MISMATCH, ErrorCode.UNKNOWN_SDKAPPID, ErrorCode.USERSIG_REVOKED,
]);

export interface ConnectionOptions {
  /** Nodes to connect to: the first at first, the next after each lost or failed connection. */
  urls: readonly string[];
  WebSocket: WebSocketConstructor | undefined;
  requestTimeoutMs: number;
  backoff: BackoffPolicy;
  /** Overrides the login answer's interval; 0 disables heartbeats. */
  heartbeatIntervalMs: number | undefined;
}

export interface ConnectionHooks {
  onPush(list: UserStatus[]): void;
  /** The login ended by the server: a kick (6208, 70052) or a re-login refused with 70052. */
  onKicked(error: PresenceError): void;
  /**
   * A re-login after a lost connection was refused with 70001: the login has ended (torn down
   * before this is called). Not called when `login()` itself is refused: its promise rejects.
   */
  onUserSigExpired(): void;
  onStateChanged(state: ConnectionState): void;
  /**
   * Logged in again after a lost connection; queued calls have just been sent. `status` is the
   * user's own, as the re-login answered it: changed meanwhile by another of its devices, it is
   * pushed to nobody (the re-login itself may change nothing).
   */
  onReconnected(status: UserStatus): void;
}

export class Connection {
  private readonly pending: PendingRequests;
  private readonly reconnects: ReconnectScheduler;
  private socket: FrameSocket | undefined;
  private state: ConnectionState = 'disconnected';
  /** The login to repeat on reconnect: set by a successful login, cleared by its end. */
  private session: LoginArgs | undefined;
  /**
   * The deviceId the server picked for a login that named none. It names this device, not that
   * login, so it outlives the session: a later login naming none presents it again, or the server
   * would count a second device while the first one lingers (dropped, or until its heartbeat timeout).
   */
  private pickedDeviceId: string | undefined;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  /** Grows at every teardown, so async work begun before it knows to stop. */
  private epoch = 0;
  /** Why the last teardown ended the login, for a login whose answer came just before it. */
  private endReason: PresenceError | undefined;
  private urlIndex = 0;

  constructor(private readonly options: ConnectionOptions, private readonly hooks: ConnectionHooks) {
    this.pending = new PendingRequests(options.requestTimeoutMs);
    this.reconnects = new ReconnectScheduler(options.backoff);
  }

  get loginUser(): string | undefined {
    return this.session?.userID;
  }

  get connectionState(): ConnectionState {
    return this.state;
  }

  /** Changes whenever a login ends, so callers can tell whether one outlived their await. */
  get generation(): number {
    return this.epoch;
  }

  /**
   * Opens a socket and logs in, as the device the server picked before when `args` names none;
   * on failure closes it and rethrows the server's error.
   */
  async login(args: LoginArgs): Promise<void> {
    const epoch = this.epoch;
    const named = args.deviceId === undefined && this.pickedDeviceId !== undefined ? { ...args, deviceId: this.pickedDeviceId } : args;
    try {
      const result = await this.connectAndLogin(named);
      // Before the check below: a login ended in the same turn still registered the device.
      if (named.deviceId === undefined) this.pickedDeviceId = result.deviceId;
      // A kick or close() handled in the same turn as the answer, before this resumed.
      if (epoch !== this.epoch) throw this.endReason!;
      this.session = { ...args, deviceId: result.deviceId };
      this.onLoggedIn(result);
    } catch (err) {
      if (epoch === this.epoch) {
        this.urlIndex += 1; // so a retried login tries the next node
        this.dropSocket();
      }
      throw err;
    }
  }

  /** A call that needs a login: sent now when connected, else queued until logged in again. */
  async request<Op extends Exclude<Operation, 'login'>>(op: Op, args: ArgsOf[Op]): Promise<ResultOf[Op]> {
    if (!this.session) throw new PresenceError(ErrorCode.NOT_LOGGED_IN, 'not logged in');
    const { frame, result } = this.pending.create(op, args);
    if (this.state === 'connected') this.transmit(frame, false);
    return (await result) as ResultOf[Op];
  }

  /** Ends the login for good (logout, close): no reconnect; pending calls fail with `reason`. */
  teardown(reason: PresenceError): void {
    this.epoch += 1;
    this.endReason = reason;
    this.session = undefined;
    this.reconnects.cancel();
    this.pending.failAll(reason);
    this.dropSocket();
  }

  /** Sends `frame`; a login (`mustSend`) that cannot go out fails at once instead of queueing. */
  private transmit(frame: Extract<ClientFrame, { t: 'req' }>, mustSend: boolean): void {
    if (this.socket?.send(frame)) this.pending.markSent(frame.id);
    else if (mustSend) this.pending.fail(frame.id, new PresenceError(ErrorCode.REQUEST_TIMEOUT, 'connection lost'));
  }

  /** Opens a fresh socket and sends the login on it. */
  private async connectAndLogin(args: LoginArgs): Promise<LoginResult> {
    this.closeSocket();
    const socket: FrameSocket = new FrameSocket({
      onFrame: (frame) => { if (socket === this.socket) this.handleFrame(frame); },
      onClose: (code) => { if (socket === this.socket) this.handleConnectionLost(code); },
    });
    this.socket = socket;
    this.setState('connecting');
    await socket.open(this.options.urls[this.urlIndex % this.options.urls.length]!, this.options.WebSocket, this.options.requestTimeoutMs);
    const { frame, result } = this.pending.create('login', args);
    this.transmit(frame, true);
    const answer = (await result) as Partial<LoginResult> | undefined;
    if (typeof answer?.deviceId !== 'string') throw new PresenceError(ErrorCode.INTERNAL_ERROR, 'malformed login answer');
    return answer as LoginResult;
  }

  private onLoggedIn(result: LoginResult): void {
    this.reconnects.reset();
    this.startHeartbeats(this.options.heartbeatIntervalMs ?? result.heartbeatIntervalMs);
    this.setState('connected');
    for (const frame of this.pending.unsent()) this.transmit(frame, false);
  }

  private handleFrame(frame: ServerFrame): void {
    switch (frame.t) {
      case 'res':
        this.pending.settle(frame.id, frame.ok, frame.ok ? frame.result : undefined, frame.ok ? undefined : frame.error);
        break;
      case 'push':
        if (Array.isArray(frame.list)) this.hooks.onPush(frame.list);
        break;
      case 'kicked':
        this.kicked(toPresenceError(frame.error));
        break;
      default:
        // 'hb' answers and 'err' (a frame the server could not attribute to a call) need nothing.
        break;
    }
  }

  private handleConnectionLost(code: number): void {
    this.socket = undefined;
    this.stopHeartbeats();
    const lost = new PresenceError(ErrorCode.REQUEST_TIMEOUT, `connection lost (close code ${code})`);
    if (code === CloseCode.GOING_AWAY) this.pending.unsendSent(lost);
    else this.pending.failSent(lost);
    if (code === CloseCode.KICKED_BY_SAME_DEVICE || code === CloseCode.KICKED_BY_ADMIN) {
      // The kicked frame normally comes first and ends the login; this covers a close without it.
      const kickCode = code === CloseCode.KICKED_BY_SAME_DEVICE ? ErrorCode.KICKED_BY_SAME_DEVICE : ErrorCode.USERSIG_REVOKED;
      this.kicked(new PresenceError(kickCode, 'kicked offline'));
    } else if (this.state === 'connected' && this.session) {
      this.urlIndex += 1;
      this.setState('disconnected');
      this.reconnects.schedule(() => void this.reconnect());
    }
    // Otherwise a login or re-login is in flight: its failed request decides what happens next,
    // and moves to the next URL itself.
  }

  private kicked(error: PresenceError): void {
    const wasLoggedIn = this.session !== undefined;
    this.teardown(error);
    if (wasLoggedIn) this.hooks.onKicked(error);
  }

  private async reconnect(): Promise<void> {
    const session = this.session;
    if (!session) return;
    const epoch = this.epoch;
    let result: LoginResult;
    try {
      result = await this.connectAndLogin(session);
    } catch (err) {
      if (epoch !== this.epoch) return;
      if (err instanceof PresenceError && AUTH_ERRORS.has(err.code)) {
        this.teardown(err);
        if (err.code === ErrorCode.USERSIG_REVOKED) this.hooks.onKicked(err);
        else if (err.code === ErrorCode.USERSIG_EXPIRED) this.hooks.onUserSigExpired();
      } else {
        this.urlIndex += 1;
        this.dropSocket();
        this.reconnects.schedule(() => void this.reconnect());
      }
      return;
    }
    if (epoch !== this.epoch) return;
    this.onLoggedIn(result);
    this.hooks.onReconnected(result.status);
  }

  /** Stops heartbeats, closes the socket and reports 'disconnected'. */
  private dropSocket(): void {
    this.stopHeartbeats();
    this.closeSocket();
    this.setState('disconnected');
  }

  private closeSocket(): void {
    this.socket?.close(1000, 'client closed');
    this.socket = undefined;
  }

  private startHeartbeats(intervalMs: number): void {
    this.stopHeartbeats();
    if (!(intervalMs > 0)) return;
    this.heartbeat = setInterval(() => this.socket?.send({ t: 'hb' }), intervalMs);
  }

  private stopHeartbeats(): void {
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private setState(state: ConnectionState): void {
    if (state === this.state) return;
    this.state = state;
    this.hooks.onStateChanged(state);
  }
}
