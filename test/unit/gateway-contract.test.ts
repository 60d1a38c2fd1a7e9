import { once } from 'node:events';
import { Packr } from 'msgpackr';
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import type { UserStatus } from '../../src/actors/types.js';
import { genUserSig } from '../../src/auth/index.js';
import type { ShardCommand, ShardReply } from '../../src/cluster/commands.js';
import { PresenceNode } from '../../src/cluster/node.js';
import type { ShardRouter } from '../../src/cluster/router.js';
import { appKey, BUCKETS } from '../../src/cluster/subjects.js';
import { withDefaultLimits, type AppConfig } from '../../src/cluster/stores/apps.js';
import type { Connection } from '../../src/gateway/connection.js';
import { createLogger } from '../../src/log.js';

const app: AppConfig = {
  sdkAppID: 1400000001,
  secretKey: 'gateway-contract-test-secret',
  edition: 'premium',
  userStatusEnabled: true,
  friendStatusAutoNotify: false,
  limits: withDefaultLimits(undefined),
};

const packr = new Packr({ useRecords: false });

/** What the tests reach inside a node's gateway. */
interface GatewayInside {
  connections: Map<string, Connection>;
  deps: { router: ShardRouter };
  deliver(message: { statuses: UserStatus[]; pushes: Array<[string, number[]]> }): void;
  closeSilentSockets(now: number): void;
  close(): Promise<void>;
}
/** The server's side of one device socket. */
interface ConnectionInside {
  socket: WebSocket;
  sink: { writableLength: number; isPaused(): boolean };
}

const insideOf = (node: PresenceNode) => (node as unknown as { gateway: GatewayInside }).gateway;
const serverSide = (connection: Connection) => connection as unknown as ConnectionInside;
const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A raw device: frames decoded in order, requests answered by id. */
class Device {
  readonly frames: Array<Record<string, unknown>> = [];
  private readonly waiters = new Set<() => void>();
  closeCode: number | undefined;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.frames.push(packr.unpack(data) as Record<string, unknown>);
      for (const wake of this.waiters) wake();
    });
    ws.on('close', (code: number) => {
      this.closeCode = code;
      for (const wake of this.waiters) wake();
    });
    ws.on('error', () => undefined);
  }

  static async open(port: number): Promise<Device> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    await once(ws, 'open');
    return new Device(ws);
  }

  send(value: unknown): void {
    this.ws.send(packr.pack(value));
  }

  /** Resolves with the first frame that matches, or fails once the socket closed without one. */
  frame(match: (frame: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.frames.find(match);
        if (found) {
          this.waiters.delete(check);
          resolve(found);
        } else if (this.closeCode !== undefined) {
          this.waiters.delete(check);
          reject(new Error(`closed with ${this.closeCode} before the frame came`));
        }
      };
      this.waiters.add(check);
      check();
    });
  }

  async request(id: number, op: string, args: unknown): Promise<Record<string, unknown>> {
    this.send({ t: 'req', id, op, args });
    return this.frame((f) => f.t === 'res' && f.id === id);
  }

  async login(userID: string, deviceId: string): Promise<void> {
    const userSig = genUserSig({ sdkAppID: app.sdkAppID, secretKey: app.secretKey, userID });
    const answer = await this.request(1_000_000, 'login', { sdkAppID: app.sdkAppID, userID, userSig, deviceId });
    expect(answer.ok).toBe(true);
  }
}

const status = (userID: string, version: number): UserStatus =>
  ({ userID, statusType: 1, customStatus: 'x'.repeat(200), version, lastSeenAt: 0 }) as unknown as UserStatus;

describe('gateway contract', () => {
  let node: PresenceNode | undefined;
  const devices: Device[] = [];
  afterEach(async () => {
    for (const device of devices.splice(0)) device.ws.terminate();
    await node?.stop();
    node = undefined;
  });

  async function start(): Promise<number> {
    node = new PresenceNode({ host: '127.0.0.1', port: 0, apps: [app], log: createLogger({ level: 'silent' }) });
    return node.start();
  }

  async function device(port: number): Promise<Device> {
    const opened = await Device.open(port);
    devices.push(opened);
    return opened;
  }

  /** A node with alice logged in on one device, and the server's side of her socket. */
  async function aliceLoggedIn() {
    const alice = await device(await start());
    await alice.login('alice', 'phone');
    const gateway = insideOf(node!);
    const [connection] = [...gateway.connections.values()];
    return { alice, gateway, connection: connection!, server: serverSide(connection!) };
  }

  it('gateway contract - a device that never reads its socket is cut off once its unread output passes a bound, not buffered without end', async () => {
    const { alice, gateway, connection, server } = await aliceLoggedIn();
    const closed = once(server.socket, 'close');
    // The device stops reading: nothing it is sent leaves the server's buffers any more.
    alice.ws.pause();
    // 64 MiB of pushes, 1 MiB (about 3 700 statuses) per tick.
    let version = 0;
    let mostBuffered = 0;
    for (let tick = 0; tick < 64 && connection.closed === false && server.socket.readyState === WebSocket.OPEN; tick++) {
      const statuses = Array.from({ length: 3_700 }, (_, i) => status(`u${i}`, ++version));
      gateway.deliver({ statuses, pushes: [[connection.connId, statuses.map((_, i) => i)]] });
      await nextTick();
      mostBuffered = Math.max(mostBuffered, server.sink.writableLength);
    }
    // The kernel takes a few MiB; past that, the server's own buffer must not keep growing.
    expect(mostBuffered).toBeLessThanOrEqual(4 * 1024 * 1024);
    await closed;
    expect(gateway.connections.size).toBe(0);
  });

  // Waits out the 5 s close timeout itself: with `ws`'s default (30 s) it fails on the test's timeout.
  it('gateway contract - a drain gives up on a device that never answers its close after 5 s, not 30 s', { timeout: 15_000 }, async () => {
    const port = await start();
    const alice = await device(port);
    await alice.login('alice', 'phone');
    // It reads nothing more: the 1001 close frame is never answered.
    alice.ws.pause();
    const stopping = node!;
    node = undefined;
    await stopping.stop();
    expect(insideOf(stopping).connections.size).toBe(0);
  });

  it('gateway contract - a device that sends pings but never reads is cut off too, not sent pongs without end', async () => {
    const { alice, gateway, server } = await aliceLoggedIn();
    const closed = once(server.socket, 'close');
    alice.ws.pause();
    // 200 000 pings of 125 bytes: 25 MiB of pongs, then a frame the server sees once it read them all.
    const payload = Buffer.alloc(125, 1);
    for (let i = 0; i < 200_000; i++) alice.ws.ping(payload);
    alice.send({ t: 'hb' });
    const outcome = await Promise.race([once(server.socket, 'message').then(() => 'read all'), closed.then(() => 'closed')]);
    if (outcome === 'read all') expect(server.sink.writableLength).toBeLessThanOrEqual(4 * 1024 * 1024);
    // `ws` ends a socket with too many pongs unsent (its `maxPendingAutoPongs`).
    await closed;
    expect(gateway.connections.size).toBe(0);
  });

  it('gateway contract - a device that floods calls while none is answered is read no further than a bounded number of calls, and each call is answered once', async () => {
    const { alice, gateway, connection, server } = await aliceLoggedIn();

    // The user's shard holds every query until released.
    const router = gateway.deps.router;
    const realSend = router.send.bind(router);
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    router.send = (async (command: ShardCommand): Promise<ShardReply> => {
      if (command.op === 'query') await released;
      return realSend(command);
    }) as ShardRouter['send'];

    // Watch how many calls the socket holds at once.
    let queued = 0;
    let peak = 0;
    let onQueued = () => undefined as void;
    Object.defineProperty(connection, 'queued', {
      get: () => queued,
      set: (value: number) => {
        queued = value;
        peak = Math.max(peak, value);
        queueMicrotask(onQueued);
      },
    });

    const calls = 2_000;
    const pad = 'p'.repeat(1_000);
    for (let id = 1; id <= calls; id++) alice.send({ t: 'req', id, op: 'getUserStatus', args: { userIDList: ['alice'], pad } });
    alice.send({ t: 'hb' });
    // Either the server read every frame (the heartbeat is answered behind them) or it stopped reading.
    await Promise.race([
      alice.frame((f) => f.t === 'hb'),
      new Promise<void>((resolve) => (onQueued = () => (server.sink.isPaused() ? resolve() : undefined))),
    ]);
    const peakBeforeRelease = peak;
    release();
    await alice.frame((f) => f.t === 'res' && f.id === calls);
    await alice.frame((f) => f.t === 'hb');
    const answers = alice.frames.filter((f) => f.t === 'res' && f.id !== 1_000_000);
    expect(answers).toHaveLength(calls);
    expect(new Set(answers.map((f) => f.id)).size).toBe(calls);
    expect(answers.every((f) => f.ok === true)).toBe(true);
    expect(peakBeforeRelease).toBeLessThanOrEqual(128);
    expect(peak).toBeLessThanOrEqual(128);
  });

  it('gateway contract - frames are answered as docs/protocol.md says: before login, a second login, logout then calls, unknown ops, text and oversized frames', async () => {
    const port = await start();
    const alice = await device(port);
    alice.send({ t: 'hb' });
    await alice.frame((f) => f.t === 'hb');
    expect((await alice.request(1, 'getUserStatus', { userIDList: ['alice'] })).error).toMatchObject({ code: 6014 });
    await alice.login('alice', 'phone');
    const again = await alice.request(2, 'login', { sdkAppID: app.sdkAppID, userID: 'alice', userSig: genUserSig({ sdkAppID: app.sdkAppID, secretKey: app.secretKey, userID: 'alice' }) });
    expect(again).toMatchObject({ ok: true, result: { deviceId: 'phone' } });
    const other = await alice.request(3, 'login', { sdkAppID: app.sdkAppID, userID: 'bob', userSig: genUserSig({ sdkAppID: app.sdkAppID, secretKey: app.secretKey, userID: 'bob' }) });
    expect(other.error).toMatchObject({ code: 6017 });
    expect((await alice.request(4, 'nonsense', {})).error).toMatchObject({ code: 6017 });
    // Frames that cannot be answered by id: `{ t: 'err' }` 6017 each, and the socket stays open.
    const errorNumber = (n: number) => alice.frame((f) => f.t === 'err' && alice.frames.filter((g) => g.t === 'err').indexOf(f) === n);
    alice.ws.send('{"t":"hb"}');
    expect(await errorNumber(0)).toMatchObject({ error: { code: 6017 } });
    alice.send({ t: 'req', op: 'logout' });
    expect(await errorNumber(1)).toMatchObject({ error: { code: 6017 } });
    alice.ws.send(Buffer.alloc(64 * 1024 + 1));
    expect(await errorNumber(2)).toMatchObject({ error: { code: 6017 } });
    expect((await alice.request(5, 'logout', {})).ok).toBe(true);
    expect((await alice.request(6, 'setSelfStatus', { customStatus: 'x' })).error).toMatchObject({ code: 6014 });
    const answers = alice.frames.filter((f) => f.t === 'res').map((f) => f.id);
    expect(answers).toEqual([1, 1_000_000, 2, 3, 4, 5, 6]);
    alice.ws.send(Buffer.alloc(1024 * 1024 + 1));
    await expect(alice.frame(() => false)).rejects.toThrow(/closed with 1009/);
  });

  it('gateway contract - a socket that never logs in, heartbeats or not, is closed with 4003 once its login grace is over', async () => {
    const port = await start();
    const silent = await device(port);
    const chatty = await device(port);
    chatty.send({ t: 'hb' });
    await chatty.frame((f) => f.t === 'hb');
    const gateway = insideOf(node!);
    gateway.closeSilentSockets(Date.now() + 29_000);
    expect(silent.closeCode).toBeUndefined();
    gateway.closeSilentSockets(Date.now() + 31_000);
    await expect(silent.frame(() => false)).rejects.toThrow(/closed with 4003/);
    await expect(chatty.frame(() => false)).rejects.toThrow(/closed with 4003/);
  });

  it('gateway contract - a login with the same deviceId sends the old socket kicked 6208, then closes it with 4001', async () => {
    const port = await start();
    const first = await device(port);
    await first.login('alice', 'phone');
    const second = await device(port);
    await second.login('alice', 'phone');
    expect(await first.frame((f) => f.t === 'kicked')).toMatchObject({ error: { code: 6208 } });
    await expect(first.frame(() => false)).rejects.toThrow(/closed with 4001/);
    await node!.kick(app.sdkAppID, 'alice');
    expect(await second.frame((f) => f.t === 'kicked')).toMatchObject({ error: { code: 70052 } });
    await expect(second.frame(() => false)).rejects.toThrow(/closed with 4002/);
  });

  /** Alice logged in, then dropped by her actor through a DISCONNECT whose kick never reaches the gateway, as when it is lost between nodes. */
  async function aliceDisownedByHerActor() {
    const logged = await aliceLoggedIn();
    const { gateway, connection } = logged;
    const dropped = await gateway.deps.router.send({ op: 'disconnect', app: app.sdkAppID, user: 'alice', deviceId: 'phone', connId: connection.connId });
    expect(dropped.ok).toBe(true);
    const [status] = await node!.statuses(app.sdkAppID, ['alice']);
    expect(status!.statusType).toBe(2); // OFFLINE, with her socket still open
    return logged;
  }

  it('gateway contract - a socket whose actor refuses its heartbeat with 6014 (the kick lost) is closed with 4003 at the next sweep, and its device logs in again', async () => {
    const { alice, gateway, connection } = await aliceDisownedByHerActor();
    const router = gateway.deps.router;
    const realSend = router.send.bind(router);
    let heartbeat: Promise<ShardReply> | undefined;
    router.send = ((command: ShardCommand) => {
      const reply = realSend(command);
      if (command.op === 'heartbeat') heartbeat = reply;
      return reply;
    }) as ShardRouter['send'];
    connection.lastHeartbeatForwardedAt = 0;
    alice.send({ t: 'hb' });
    await alice.frame((f) => f.t === 'hb');
    expect(heartbeat).toBeDefined();
    expect(await heartbeat).toMatchObject({ ok: false, error: { code: 6014 } });
    await nextTick();
    // Not closed at once, nor by a sweep right after: a kick on its way would close it first.
    gateway.closeSilentSockets(Date.now());
    await nextTick();
    expect(alice.closeCode).toBeUndefined();
    gateway.closeSilentSockets(Date.now() + 500);
    await expect(alice.frame(() => false)).rejects.toThrow(/closed with 4003/);
    const again = await device(node!.port);
    await again.login('alice', 'phone');
    const [status] = await node!.statuses(app.sdkAppID, ['alice']);
    expect(status!.statusType).toBe(1);
  });

  it('gateway contract - a call its actor refuses with 6014 is answered so, and the socket is closed with 4003 at the next sweep', async () => {
    const { alice, gateway } = await aliceDisownedByHerActor();
    const answer = await alice.request(7, 'setSelfStatus', { customStatus: 'in a call' });
    expect(answer).toMatchObject({ ok: false, error: { code: 6014 } });
    gateway.closeSilentSockets(Date.now() + 500);
    await expect(alice.frame(() => false)).rejects.toThrow(/closed with 4003/);
  });

  it('gateway contract - a call refused with 6014 by the gateway itself, before login, leaves the socket open', async () => {
    const port = await start();
    const early = await device(port);
    expect(await early.request(1, 'setSelfStatus', { customStatus: 'x' })).toMatchObject({ ok: false, error: { code: 6014 } });
    insideOf(node!).closeSilentSockets(Date.now() + 500);
    await early.login('alice', 'phone');
  });

  it('gateway contract - a call refused with 6014 by the gateway itself, its app deleted, leaves the socket open', async () => {
    const { alice, gateway } = await aliceLoggedIn();
    await node!.transport.kv(BUCKETS.apps).then((apps) => apps.delete(appKey(app.sdkAppID)));
    await nextTick(); // the registry's watch has run
    expect(await alice.request(7, 'setSelfStatus', { customStatus: 'x' })).toMatchObject({ ok: false, error: { code: 6014 } });
    gateway.closeSilentSockets(Date.now() + 500);
    expect(await alice.request(8, 'getUserStatus', { userIDList: ['alice'] })).toMatchObject({ ok: false, error: { code: 6014 } });
  });

  /**
   * The logout's KV write is slow (as in a leader election), so the device's next heartbeat is
   * forwarded while it runs; the actor runs that heartbeat after the logout and refuses it with
   * 6014. Both answers reach the gateway together, the logout's resolved first, as a transport
   * reading them in one chunk does.
   */
  it('gateway contract - a heartbeat refused just behind a successful logout does not close the socket once it logs in again on it', async () => {
    const port = await start();
    const web = await device(port);
    await web.login('alice', 'web'); // so her actor stays online after the phone logs out
    const alice = await device(port);
    await alice.login('alice', 'phone');
    const gateway = insideOf(node!);
    const connection = [...gateway.connections.values()].find((c) => c.login?.deviceId === 'phone')!;
    const router = gateway.deps.router;
    const realSend = router.send.bind(router);
    const replies: { logout?: ShardReply; heartbeat?: ShardReply } = {};
    const deliver: { logout?: (reply: ShardReply) => void; heartbeat?: (reply: ShardReply) => void } = {};
    let logoutSent: () => void = () => undefined;
    const logoutOut = new Promise<void>((resolve) => (logoutSent = resolve));
    router.send = ((command: ShardCommand) => {
      const op = command.op;
      if (op !== 'logout' && op !== 'heartbeat') return realSend(command);
      void realSend(command).then((reply) => {
        replies[op] = reply;
        if (!replies.logout || !replies.heartbeat) return;
        deliver.logout!(replies.logout);
        deliver.heartbeat!(replies.heartbeat);
      });
      if (op === 'logout') logoutSent();
      return new Promise<ShardReply>((resolve) => (deliver[op] = resolve));
    }) as ShardRouter['send'];

    alice.send({ t: 'req', id: 5, op: 'logout', args: {} });
    await logoutOut;
    connection.lastHeartbeatForwardedAt = 0; // the heartbeat interval passed while the logout ran
    alice.send({ t: 'hb' });
    expect(await alice.frame((f) => f.t === 'res' && f.id === 5)).toMatchObject({ ok: true });
    expect(replies.heartbeat).toMatchObject({ ok: false, error: { code: 6014 } });
    router.send = realSend;

    // Logged in again on the same socket, as docs/protocol.md allows after a logout.
    const userSig = genUserSig({ sdkAppID: app.sdkAppID, secretKey: app.secretKey, userID: 'alice' });
    expect(await alice.request(8, 'login', { sdkAppID: app.sdkAppID, userID: 'alice', userSig, deviceId: 'phone' })).toMatchObject({ ok: true });
    gateway.closeSilentSockets(Date.now() + 500);
    expect(await alice.request(9, 'getUserStatus', { userIDList: ['alice'] })).toMatchObject({ ok: true });
  });

  it('gateway contract - a drain answers the calls it started, then closes with 1001, and runs no later frame', async () => {
    const port = await start();
    const alice = await device(port);
    await alice.login('alice', 'phone');
    const gateway = insideOf(node!);
    const router = gateway.deps.router;
    const realSend = router.send.bind(router);
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    let held: () => void = () => undefined;
    const isHeld = new Promise<void>((resolve) => (held = resolve));
    router.send = (async (command: ShardCommand): Promise<ShardReply> => {
      if (command.op === 'setCustomStatus') {
        held();
        await released;
      }
      return realSend(command);
    }) as ShardRouter['send'];
    alice.send({ t: 'req', id: 1, op: 'setSelfStatus', args: { customStatus: 'one' } });
    await isHeld;
    const closing = gateway.close();
    alice.send({ t: 'req', id: 2, op: 'setSelfStatus', args: { customStatus: 'two' } });
    await once(serverSide([...gateway.connections.values()][0]!).socket, 'message');
    release();
    await closing;
    await expect(alice.frame(() => false)).rejects.toThrow(/closed with 1001/);
    expect(alice.frames.filter((f) => f.t === 'res' && f.id !== 1_000_000)).toEqual([expect.objectContaining({ id: 1, ok: true })]);
  });
});
