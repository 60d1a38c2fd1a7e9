import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { unpack } from 'msgpackr';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { verifyUserSig, UserSigError } from '../auth/index.js';
import { decode } from '../cluster/codec.js';
import type { GatewayDelivery, ShardCommand, ShardReply } from '../cluster/commands.js';
import type { DeliveryBatcher } from '../cluster/delivery.js';
import type { ShardRouter } from '../cluster/router.js';
import { policyOf, type AppConfig, type AppRegistry } from '../cluster/stores/apps.js';
import { gatingRefusal, type StatusCall } from '../actors/callPolicy.js';
import { subjects } from '../cluster/subjects.js';
import type { Subscription, Transport } from '../cluster/transport/types.js';
import { ErrorCode, PresenceError, invalidParameters } from '../errors.js';
import type { Logger } from '../log.js';
import type { NodeMetrics } from '../metrics/nodeMetrics.js';
import { CloseCode, MAX_FRAME_BYTES, OPERATIONS, type ClientFrame, type LoginResult } from '../protocol.js';
import { Connection } from './connection.js';
import { DeviceSocket } from './deviceSocket.js';
import { Outbox } from './outbox.js';
import { PushedVersions } from './pushedVersions.js';
import { refuseUpgrade } from './refuseUpgrade.js';
import { FrameError, listArg, parseFrame, validateCustomStatus, validateLogin, validateUserIDList } from './validate.js';
import { runInOrder } from '../serialQueue.js';

/** Frames above this are not even read by `ws`: the socket closes with 1009. */
const HARD_FRAME_LIMIT = 1024 * 1024;
/**
 * Liveness reaches the user actor at most this often per connection, and at least
 * three times per heartbeat timeout, so a chatty device costs little and a short
 * timeout still has margin. It rides on the device's next call when the frame is one.
 */
const HEARTBEAT_FORWARD_MAX_INTERVAL_MS = 1_000;
const KNOWN_OPS: ReadonlySet<string> = new Set(OPERATIONS);
/**
 * A socket is not read while this many of its calls wait or run: a device sending calls faster
 * than they are answered is held back by TCP, not queued for without bound. `ws` still hands
 * over the frames of the chunk it was reading, so a socket holds at most this many calls and
 * one chunk's.
 */
const MAX_QUEUED_CALLS = 32;
/**
 * A device that does not answer a close within 5 s is given up (`ws` waits 30 s by default): a
 * drain waits for every socket, and one phone whose network went away held a node's shutdown.
 * `closeTimeout` is ws 8.23's; its types (@types/ws 8.18) do not know it yet.
 */
const SERVER_OPTIONS = { noServer: true, clientTracking: false, maxPayload: HARD_FRAME_LIMIT, WebSocket: DeviceSocket, closeTimeout: 5_000 };
/** Before login, a socket must log in within this time or be closed. */
const LOGIN_GRACE_MS = 30_000;
/**
 * How often the gateway looks for sockets past their heartbeat deadline, so a silent socket is
 * closed up to this much late (its actor's own timer makes the user OFFLINE on time). A look at
 * 10 000 sockets takes ~40 µs.
 */
const SWEEP_INTERVAL_MS = 500;
/**
 * A socket its actor disowned is closed this long after the refusal, not at once: a kick on its
 * way (6208, the device replaced by another login) closes it first, as a kick, after which the
 * SDK does not log in again, where a 4003 would have it log in and replace the newer connection.
 */
const DISOWNED_GRACE_MS = SWEEP_INTERVAL_MS;
/** A pushed status's check against the gateway's versions, once per message (`Gateway.deliver`). */
const UNCHECKED = 0;
const PUSH = 1;
const STALE = 2;

/** A frame's proof of life on its way to the device's actor (see `onAlive`). */
interface Liveness {
  /** Yet to be sent: by the call's first command, or as a heartbeat of its own. */
  due: boolean;
  /** Sent along with a command of the call, which may have failed before the actor ran it. */
  carried?: boolean;
}

export interface GatewayDeps {
  gatewayId: string;
  transport: Transport;
  /** The node's delivery batcher: what it has for this gateway comes in process, not over the transport. */
  delivery: DeliveryBatcher;
  router: ShardRouter;
  apps: AppRegistry;
  log: Logger;
  metrics?: NodeMetrics;
}

/** The connection of a socket the gateway accepted (every socket of its server is a `DeviceSocket`). */
const connectionOf = (socket: WebSocket): Connection => (socket as DeviceSocket).connection!;

/**
 * A random UUID held as one flat string. Node joins `randomUUID()` from 21 pieces, and V8 keeps
 * the result as the tree of its pieces: 482 B of heap for 36 characters, against 58 B flat, for
 * as long as the connection lives (its id is held by the gateway and by the user's device).
 */
const flatUUID = (): string => Buffer.from(randomUUID(), 'latin1').toString('latin1');

/**
 * The WebSocket endpoint for devices: decodes and validates frames, checks UserSigs,
 * forwards calls to the user's shard, and delivers pushes and kicks to sockets.
 */
export class Gateway {
  /** Without client tracking: `connections` is the one list of sockets, with no Set and listener per socket in `ws`. */
  private readonly wss = new WebSocketServer(SERVER_OPTIONS);
  private readonly connections = new Map<string, Connection>();
  private readonly outbox = new Outbox();
  /** The newest version of each user pushed here: an older one arriving later is not pushed. */
  private readonly versions = new PushedVersions();
  private sweep: NodeJS.Timeout | undefined;
  private delivery: Subscription | undefined;
  private localDelivery: Subscription | undefined;
  private draining = false;
  /** Set while `close` waits for the last socket to close. */
  private allClosed: (() => void) | undefined;

  constructor(private readonly deps: GatewayDeps) {}

  start(): void {
    this.delivery = this.deps.transport.subscribe(subjects.gatewayOut(this.deps.gatewayId), (data) =>
      this.deliver(decode<GatewayDelivery>(data), true),
    );
    this.localDelivery = this.deps.delivery.connectLocal(this.deps.gatewayId, (message) => this.deliver(message, false));
    this.sweep = setInterval(() => this.closeSilentSockets(Date.now()), SWEEP_INTERVAL_MS);
    this.sweep.unref();
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.draining) {
      refuseUpgrade(socket, '503 Service Unavailable');
      return;
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, socket));
  }

  /**
   * Closes every socket with 1001 so devices reconnect elsewhere; their actors keep them
   * until they do. Calls already running are answered first and later frames are not run,
   * so a client may send again whatever was unanswered at a 1001 (docs/protocol.md).
   */
  async close(): Promise<void> {
    this.draining = true;
    clearInterval(this.sweep);
    this.delivery?.unsubscribe();
    this.localDelivery?.unsubscribe();
    await Promise.all([...this.connections.values()].map((connection) => connection.queue));
    for (const connection of this.connections.values()) connection.closeWith(CloseCode.GOING_AWAY, 'node shutting down');
    // `ws` tracks no clients here, so the gateway waits for its sockets itself: each is gone
    // when its close handshake ends, or when `ws` gives up on it and destroys it (5 s).
    if (this.connections.size) await new Promise<void>((resolve) => (this.allClosed = resolve));
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  /** One listener of each kind for every socket, not a closure per socket: `ws` calls them with the socket as `this`. */
  private readonly socketListeners = ((gateway: Gateway) => ({
    message(this: WebSocket, data: RawData, isBinary: boolean) {
      gateway.onMessage(connectionOf(this), data, isBinary);
    },
    close(this: WebSocket) {
      gateway.onClose(connectionOf(this));
    },
    error(this: WebSocket, error: Error) {
      gateway.deps.log.debug({ err: error, conn: connectionOf(this).connId }, 'socket error');
    },
  }))(this);

  private accept(ws: DeviceSocket, socket: Duplex): void {
    const connection = new Connection(flatUUID(), ws, socket, this.outbox);
    this.connections.set(connection.connId, connection);
    connection.touch(LOGIN_GRACE_MS);
    ws.on('message', this.socketListeners.message);
    ws.on('close', this.socketListeners.close);
    ws.on('error', this.socketListeners.error);
  }

  private onMessage(connection: Connection, data: RawData, isBinary: boolean): void {
    if (this.draining) return;
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (!isBinary) return this.refuseFrame(connection, invalidParameters('text frames are not accepted; send msgpack in binary frames'));
    if (bytes.length > MAX_FRAME_BYTES) {
      return this.refuseFrame(connection, invalidParameters(`frame of ${bytes.length} bytes is over the ${MAX_FRAME_BYTES}-byte limit`));
    }
    let frame: ClientFrame;
    try {
      frame = parseFrame(unpack(bytes));
    } catch (error) {
      if (error instanceof FrameError) return connection.fail(error.id, error.error.toJSON());
      if (error instanceof PresenceError) return this.refuseFrame(connection, error);
      return this.refuseFrame(connection, invalidParameters('the frame is not valid msgpack'));
    }
    const liveness: Liveness = { due: connection.login !== undefined && this.onAlive(connection) };
    // A call waiting behind others would bring the liveness late: it goes at once instead.
    if (liveness.due && (frame.t === 'hb' || connection.queued > 0)) {
      liveness.due = false;
      this.forwardHeartbeat(connection);
    }
    if (frame.t === 'hb') return connection.send({ t: 'hb' });
    const request = frame;
    void runInOrder(connection, () => this.answer(connection, request, liveness));
    if (connection.queued >= MAX_QUEUED_CALLS) connection.socket.pause();
  }

  private refuseFrame(connection: Connection, error: PresenceError): void {
    connection.send({ t: 'err', error: error.toJSON() });
  }

  private async answer(connection: Connection, frame: Extract<ClientFrame, { t: 'req' }>, liveness: Liveness): Promise<void> {
    let code = 0;
    // A 6014 answered to a call made while logged in comes from the user's actor, unless the app
    // was deleted (the gateway's own 6014, checked only on a refusal: not a lookup per call).
    const loggedInAs = frame.op === 'login' ? undefined : connection.login;
    try {
      const result = await this.call(connection, frame.op, frame.args, liveness);
      connection.send({ t: 'res', id: frame.id, ok: true, result });
    } catch (error) {
      // The command that carried the liveness may have failed before the actor ran it.
      if (liveness.carried) liveness.due = true;
      if (error instanceof PresenceError) {
        code = error.code;
        if (code === ErrorCode.NOT_LOGGED_IN && loggedInAs !== undefined && connection.login === loggedInAs && this.appOf(connection)) connection.disownedAt ||= Date.now();
        connection.fail(frame.id, error.toJSON());
      } else {
        code = ErrorCode.INTERNAL_ERROR;
        this.deps.log.error({ err: error, op: frame.op, conn: connection.connId }, 'request failed');
        connection.fail(frame.id, { code, desc: 'internal error' });
      }
    } finally {
      this.count(frame.op, code);
      if (liveness.due && connection.login) this.forwardHeartbeat(connection);
      // This call still counts in `queued` until it settles.
      if (connection.socket.isPaused && connection.queued <= MAX_QUEUED_CALLS) connection.socket.resume();
    }
  }

  private count(op: string, code: number): void {
    const metrics = this.deps.metrics;
    if (!metrics) return;
    // Only known operations become label values: a client cannot grow the series without bound.
    const label = KNOWN_OPS.has(op) ? op : 'unknown';
    metrics.requests.inc({ op: label, code: String(code) });
    if (op === 'login') metrics.logins.inc({ result: code === 0 ? 'ok' : String(code) });
    if (code === ErrorCode.RATE_LIMITED) metrics.rateLimited.inc({ op: label });
  }

  private async call(connection: Connection, op: string, args: unknown, liveness: Liveness): Promise<unknown> {
    if (op === 'login') return this.login(connection, args, liveness);
    const login = connection.login;
    const app = this.appOf(connection);
    if (!login || !app) throw new PresenceError(ErrorCode.NOT_LOGGED_IN, `log in before calling ${op}`);
    // Each command is written out whole: spreading a shared part into it cost a clone and a
    // shape change per call, which V8 handled in its runtime (a few per cent of a node's CPU).
    const { sdkAppID, userID: user, deviceId } = login;
    const { connId } = connection;
    switch (op) {
      case 'logout': {
        await this.send({ op: 'logout', app: sdkAppID, user, deviceId, connId });
        connection.setLogin(undefined);
        connection.touch(LOGIN_GRACE_MS);
        return {};
      }
      case 'setSelfStatus': {
        const reply = await this.send({ op: 'setCustomStatus', app: sdkAppID, user, deviceId, connId, customStatus: validateCustomStatus(args) }, liveness);
        return { status: reply.status };
      }
      case 'getUserStatus': {
        const list = listArg(args);
        const selfOnly = Array.isArray(list) && list.length > 0 && list.every((id) => id === login.userID);
        if (!selfOnly) this.checkGating(app, 'getUserStatus');
        const userIDs = validateUserIDList(list, app.limits.maxQueryUsers);
        return { statuses: (await this.send({ op: 'query', app: sdkAppID, user, deviceId, connId, userIDs }, liveness)).statuses };
      }
      case 'subscribeUserStatus': {
        this.checkGating(app, 'subscribeUserStatus');
        const userIDs = validateUserIDList(listArg(args), app.limits.maxSubscribePerCall);
        return { evicted: (await this.send({ op: 'subscribe', app: sdkAppID, user, deviceId, connId, userIDs }, liveness)).evicted ?? [] };
      }
      case 'unsubscribeUserStatus': {
        this.checkGating(app, 'unsubscribeUserStatus');
        const userIDs = validateUserIDList(listArg(args), app.limits.maxSubscribePerCall, { allowEmpty: true });
        await this.send({ op: 'unsubscribe', app: sdkAppID, user, deviceId, connId, userIDs }, liveness);
        return {};
      }
    }
    throw invalidParameters(`unknown operation ${op}`);
  }

  /** Edition and switch come before the parameters in the refusal order (docs/decisions.md). */
  private checkGating(app: AppConfig, call: StatusCall['call']): void {
    const refused = gatingRefusal(app.sdkAppID, call, policyOf(app));
    if (refused) throw new PresenceError(refused.code, refused.desc);
  }

  private async login(connection: Connection, args: unknown, liveness: Liveness): Promise<LoginResult> {
    const login = validateLogin(args);
    const current = connection.login;
    if (current) {
      if (current.sdkAppID === login.sdkAppID && current.userID === login.userID && (login.deviceId ?? current.deviceId) === current.deviceId) {
        return this.loginResult(this.deps.apps.get(current.sdkAppID)!, current.deviceId, await this.selfStatus(connection, liveness));
      }
      throw invalidParameters(`this connection is logged in as ${current.userID}; log out first`);
    }
    const app = this.deps.apps.get(login.sdkAppID);
    if (!app) throw new PresenceError(ErrorCode.UNKNOWN_SDKAPPID, `sdkAppID ${login.sdkAppID} is not configured on this cluster`);
    let sigTime: number;
    try {
      // A kick's revocation (70052) is the actor's to check: it orders logins and kicks.
      sigTime = verifyUserSig({ userSig: login.userSig, sdkAppID: app.sdkAppID, userID: login.userID, secretKey: app.secretKey }).time;
    } catch (error) {
      if (error instanceof UserSigError) throw new PresenceError(error.code, error.message);
      throw error;
    }
    const deviceId = login.deviceId ?? flatUUID();
    const command: ShardCommand = {
      op: 'login',
      app: app.sdkAppID,
      user: login.userID,
      deviceId,
      connId: connection.connId,
      gatewayId: this.deps.gatewayId,
      platform: login.platform,
      sigTime,
    };
    const reply = await this.send(command);
    if (connection.closed) {
      // The socket went away while the actor was adding it: take it back out.
      void this.disconnect({ app: app.sdkAppID, user: login.userID, deviceId, connId: connection.connId });
      throw new PresenceError(ErrorCode.REQUEST_TIMEOUT, 'the connection closed during login');
    }
    connection.setLogin({ sdkAppID: app.sdkAppID, userID: login.userID, deviceId });
    connection.touch(app.limits.heartbeatTimeoutMs);
    return this.loginResult(app, deviceId, reply.status!);
  }

  private loginResult(app: AppConfig, deviceId: string, status: LoginResult['status']): LoginResult {
    return {
      deviceId,
      heartbeatIntervalMs: app.limits.heartbeatIntervalMs,
      heartbeatTimeoutMs: app.limits.heartbeatTimeoutMs,
      status,
    };
  }

  private async selfStatus(connection: Connection, liveness: Liveness): Promise<LoginResult['status']> {
    const login = connection.login!;
    const reply = await this.send(
      { op: 'query', app: login.sdkAppID, user: login.userID, deviceId: login.deviceId, connId: connection.connId, userIDs: [login.userID] },
      liveness,
    );
    return reply.statuses![0]!;
  }

  /**
   * Sends a command to the user's shard; a refusal becomes the PresenceError the device gets.
   * A device's call takes its liveness along when that is due (once per frame): the command,
   * built for this one call, is marked rather than copied.
   */
  private async send(command: ShardCommand, liveness?: Liveness): Promise<Extract<ShardReply, { ok: true }>> {
    if (liveness?.due && 'deviceId' in command) {
      liveness.due = false;
      liveness.carried = true;
      command.alive = true;
    }
    const reply = await this.deps.router.send(command);
    if (!reply.ok) throw new PresenceError(reply.error.code, reply.error.desc, reply.error.retryAfterMs);
    return reply;
  }

  /** Any frame of a logged-in device proves it alive, to its socket timer and to its actor. */
  private onAlive(connection: Connection): boolean {
    const timeoutMs = this.appOf(connection)?.limits.heartbeatTimeoutMs ?? LOGIN_GRACE_MS;
    const now = Date.now();
    connection.touch(timeoutMs, now);
    if (now - connection.lastHeartbeatForwardedAt < Math.min(HEARTBEAT_FORWARD_MAX_INTERVAL_MS, timeoutMs / 3)) return false;
    connection.lastHeartbeatForwardedAt = now;
    return true;
  }

  private forwardHeartbeat(connection: Connection): void {
    const login = connection.login!;
    const command: ShardCommand = { op: 'heartbeat', app: login.sdkAppID, user: login.userID, deviceId: login.deviceId, connId: connection.connId };
    this.deps.router.send(command).then(
      (reply) => {
        if (!reply.ok && reply.error.code === ErrorCode.NOT_LOGGED_IN && connection.login === login) connection.disownedAt ||= Date.now();
      },
      (error) => this.deps.log.warn({ err: error, user: login.userID }, 'heartbeat not forwarded'),
    );
  }

  /**
   * Closes with 4003 the sockets past their deadline, and those whose actor no longer holds their
   * device (`Connection.disownedAt`): their devices count as dropped, not logged out, and the SDK
   * logs in again.
   */
  private closeSilentSockets(now: number): void {
    for (const connection of this.connections.values()) {
      if (connection.deadline > now && !(connection.disownedAt && now - connection.disownedAt >= DISOWNED_GRACE_MS)) continue;
      connection.closeWith(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout');
      connection.closedByServer = false;
    }
  }

  private onClose(connection: Connection): void {
    connection.markClosed();
    this.connections.delete(connection.connId);
    if (!this.connections.size) this.allClosed?.();
    const login = connection.login;
    if (!login || connection.closedByServer) return;
    void this.disconnect({ app: login.sdkAppID, user: login.userID, deviceId: login.deviceId, connId: connection.connId });
  }

  /**
   * Tells the actor its device dropped. Retried while the shard is between owners;
   * if it never gets through, the actor's own heartbeat deadline still catches it.
   */
  private async disconnect(device: { app: number; user: string; deviceId: string; connId: string }): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const reply = await this.deps.router.send({ ...device, op: 'disconnect' }).catch(() => undefined);
      if (reply?.ok || (reply && reply.error.code !== ErrorCode.REQUEST_TIMEOUT)) return;
    }
    this.deps.log.warn({ user: device.user, app: device.app }, 'disconnect not delivered; the heartbeat deadline will apply');
  }

  /**
   * Pushes and kicks from a node. A status older than one of the same user pushed here already
   * is not pushed: a node that lost the device's user while frozen may still send what it had
   * (docs/architecture.md, Fan-out). Each status is checked once per message, as a connection
   * first names it: the statuses of one user in a connection's list are in order, oldest first.
   */
  private deliver(message: GatewayDelivery, decoded = false): void {
    const statuses = message.statuses ?? [];
    let pushed = 0;
    const pushes = message.pushes ?? [];
    if (pushes.length) {
      // Per status, once checked against `versions`: PUSH, or STALE if older than one pushed already.
      const verdicts = new Uint8Array(statuses.length);
      for (const [connId, indexes] of pushes) {
        const connection = this.connections.get(connId);
        if (!connection) continue;
        // Statuses are of the connection's app; one not logged in (yet) is pushed them unchecked.
        const app = connection.login?.sdkAppID;
        for (const i of indexes) {
          const status = statuses[i];
          if (!status) continue;
          if (app !== undefined) {
            if (verdicts[i] === UNCHECKED) verdicts[i] = this.versions.admit(app, status.userID, status.version, decoded) ? PUSH : STALE;
            if (verdicts[i] === STALE) continue;
          }
          this.outbox.push(connection, status);
          pushed++;
        }
      }
    }
    if (pushed) this.deps.metrics?.notifications.inc(pushed);
    for (const [connId, code] of message.kicks ?? []) {
      const connection = this.connections.get(connId);
      if (!connection) continue;
      if (code === ErrorCode.NOT_LOGGED_IN) {
        // The actor timed the device out: close like the gateway's own timeout, so the SDK reconnects.
        connection.setLogin(undefined);
        connection.closeWith(CloseCode.HEARTBEAT_TIMEOUT, 'heartbeat timeout');
        continue;
      }
      const desc = code === ErrorCode.KICKED_BY_SAME_DEVICE
        ? 'another login with the same deviceId replaced this connection'
        : 'the user was kicked by the admin API; its UserSigs are revoked';
      connection.send({ t: 'kicked', error: { code, desc } });
      connection.setLogin(undefined);
      connection.closeWith(code === ErrorCode.KICKED_BY_SAME_DEVICE ? CloseCode.KICKED_BY_SAME_DEVICE : CloseCode.KICKED_BY_ADMIN, 'kicked');
    }
  }

  private appOf(connection: Connection): AppConfig | undefined {
    return connection.login ? this.deps.apps.get(connection.login.sdkAppID) : undefined;
  }
}
