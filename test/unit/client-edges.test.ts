import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, PresenceClient, PresenceError, type PresenceClientOptions, type WebSocketLike } from '../../src/client/index.js';
import type { ClientFrame, ServerFrame } from '../../src/protocol.js';
import { Changes, SDK_APP_ID, TestServer, defaultAnswer, packr, record, status, type Request } from '../support/clientHarness.js';

/**
 * A WebSocket the test drives by hand: it opens when told and delivers server frames
 * synchronously, so two frames can reach the client in one turn of the event loop, as they do
 * when they arrive in one TCP segment.
 */
class FakeWebSocket implements WebSocketLike {
  static readonly instances: FakeWebSocket[] = [];
  static changes: Changes | undefined;
  binaryType = 'blob';
  readyState = 0;
  readonly sent: ClientFrame[] = [];
  private readonly handlers = new Map<string, Array<(event: unknown) => void>>();

  constructor(readonly url: string) {
    FakeWebSocket.instances.push(this);
    FakeWebSocket.changes?.notify();
  }

  addEventListener(type: string, listener: (event: unknown) => void): void {
    this.handlers.set(type, [...(this.handlers.get(type) ?? []), listener]);
  }

  send(data: Uint8Array): void {
    this.sent.push(packr.unpack(data) as ClientFrame);
    FakeWebSocket.changes?.notify();
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    queueMicrotask(() => this.dispatch('close', { code, reason }));
  }

  open(): void {
    this.readyState = 1;
    this.dispatch('open', {});
  }

  deliver(frame: ServerFrame): void {
    const bytes = packr.pack(frame);
    this.dispatch('message', { data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
  }

  requests(op: string): Request[] {
    return this.sent.filter((f): f is Request => f.t === 'req' && f.op === op);
  }

  private dispatch(type: string, event: unknown): void {
    for (const handler of this.handlers.get(type) ?? []) handler(event);
  }
}

const servers: TestServer[] = [];
let client: PresenceClient | undefined;

async function setup(options: Partial<PresenceClientOptions> = {}) {
  const changes = new Changes();
  const server = await TestServer.start(changes);
  servers.push(server);
  client = new PresenceClient({ url: server.url, sdkAppID: SDK_APP_ID, ...options });
  return { changes, server, client, events: record(client, changes) };
}

/** A client on a {@link FakeWebSocket}, logged in up to the point where the login frame was sent. */
async function loginOnFakeSocket(deviceId: string) {
  const changes = new Changes();
  FakeWebSocket.changes = changes;
  client = new PresenceClient({ url: 'ws://fake/ws', sdkAppID: SDK_APP_ID, WebSocket: FakeWebSocket });
  const events = record(client, changes);
  const login = client.login('alice', 'sig-a', { deviceId }).then(() => undefined, (err: unknown) => err);
  await changes.until(() => FakeWebSocket.instances.length === 1);
  const socket = FakeWebSocket.instances[0]!;
  socket.open();
  await changes.until(() => socket.requests('login').length === 1);
  return { changes, client, events, socket, login, loginId: socket.requests('login')[0]!.id };
}

afterEach(async () => {
  client?.close();
  for (const server of servers.splice(0)) await server.stop();
  client = undefined;
  FakeWebSocket.instances.length = 0;
  FakeWebSocket.changes = undefined;
  vi.restoreAllMocks();
});

describe('client SDK edges - argument validation', () => {
  it('client SDK edges - login with a userID that is not a string rejects with 6017 instead of resolving', async () => {
    const { client } = await setup();
    const result = await client.login(undefined as unknown as string, 'sig-a').then(() => 'resolved', (err: unknown) => err);
    expect(result).toBeInstanceOf(PresenceError);
    expect(result).toMatchObject({ code: ErrorCode.INVALID_PARAMETERS });
    expect(client.getLoginUser()).toBeUndefined();
  });

  it('client SDK edges - null arguments reject with a PresenceError or mean "omitted", never a TypeError', async () => {
    const { server, client } = await setup();
    const loginNull = await client.login('alice', 'sig-a', null as never).then(() => undefined, (err: unknown) => err);
    expect(loginNull).toBeUndefined();
    expect(server.requests('login')[0]?.frame.args).toEqual({ sdkAppID: SDK_APP_ID, userID: 'alice', userSig: 'sig-a' });

    // `null` is "no custom status" (SPEC §2) and "no list" (SPEC §3: omitted clears every subscription).
    const setNull = await client.setSelfStatus(null as never).then(() => undefined, (err: unknown) => err);
    const unsubscribeNull = await client.unsubscribeUserStatus(null as never).then(() => undefined, (err: unknown) => err);
    expect(setNull).toBeUndefined();
    expect(unsubscribeNull).toBeUndefined();
    expect(server.requests('setSelfStatus')[0]?.frame.args).toEqual({});
    expect(server.requests('unsubscribeUserStatus')[0]?.frame.args).toEqual({});
  });

  it('client SDK edges - a null deviceId or platform in the login options is omitted, not sent for the server to refuse', async () => {
    const { server, client } = await setup();
    await client.login('alice', 'sig-a', { deviceId: null, platform: null } as never);
    expect(server.requests('login')[0]?.frame.args).toEqual({ sdkAppID: SDK_APP_ID, userID: 'alice', userSig: 'sig-a' });
  });
});

describe('client SDK edges - ordering', () => {
  it('client SDK edges - getUserStatus never hands back a status older than one already delivered', async () => {
    const { changes, server, client, events } = await setup();
    await client.login('alice', 'sig-a');
    server.send(0, { t: 'push', list: [status('bob', 6, 'newer')] });
    await changes.until(() => events.statuses.length === 1);
    // An answer computed before bob's change, overtaken by the push of that change.
    server.answer = (req, conn) =>
      req.op === 'getUserStatus' ? { result: { statuses: [status('bob', 5, 'older'), status('carol', 2)] } } : defaultAnswer(req, conn);
    const list = await client.getUserStatus(['bob', 'carol']);
    expect(list).toEqual([status('bob', 6, 'newer'), status('carol', 2)]);
  });
});

describe('client SDK edges - connection', () => {
  it('client SDK edges - a kick arriving in the same turn as the login answer does not leave a dead "connected" client', async () => {
    const { client, events, socket, login, loginId } = await loginOnFakeSocket('phone');
    socket.deliver({
      t: 'res', id: loginId, ok: true,
      result: { deviceId: 'phone', heartbeatIntervalMs: 30_000, heartbeatTimeoutMs: 400_000, status: status('alice', 1) },
    });
    socket.deliver({ t: 'kicked', error: { code: ErrorCode.KICKED_BY_SAME_DEVICE, desc: 'replaced' } });
    const outcome = await login;

    expect(outcome).toMatchObject({ code: ErrorCode.KICKED_BY_SAME_DEVICE });
    expect(client.getLoginUser()).toBeUndefined();
    expect(client.getConnectionState()).toBe('disconnected');
    expect(events.states.at(-1)).toBe('disconnected');
    await expect(client.getUserStatus(['bob'])).rejects.toMatchObject({ code: ErrorCode.NOT_LOGGED_IN });
  });

  it('client SDK edges - close() from a listener during the login answer leaves the client logged out', async () => {
    const { client, socket, login, loginId } = await loginOnFakeSocket('phone');
    client.addListener({ onUserStatusChanged: () => client.close() });
    socket.deliver({
      t: 'res', id: loginId, ok: true,
      result: { deviceId: 'phone', heartbeatIntervalMs: 30_000, heartbeatTimeoutMs: 400_000, status: status('alice', 1) },
    });
    socket.deliver({ t: 'push', list: [status('alice', 1)] });
    const outcome = await login;

    expect(outcome).toMatchObject({ code: ErrorCode.REQUEST_TIMEOUT, desc: 'client closed' });
    expect(client.getLoginUser()).toBeUndefined();
    expect(client.getConnectionState()).toBe('disconnected');
  });

  it('client SDK edges - a connection lost during a re-login moves to the next URL, not the one after it', async () => {
    const changes = new Changes();
    const [a, b, c] = [await TestServer.start(changes), await TestServer.start(changes), await TestServer.start(changes)];
    servers.push(a, b, c);
    client = new PresenceClient({ url: [a.url, b.url, c.url], sdkAppID: SDK_APP_ID, reconnect: { initialDelayMs: 0, maxDelayMs: 0 } });
    const events = record(client, changes);
    await client.login('alice', 'sig-a');
    // B takes the socket but dies before it answers the login: the next node to try is C.
    b.answer = (_req, conn) => {
      b.sockets[conn]?.terminate();
      return 'no answer';
    };
    a.sockets[0]?.terminate();
    await changes.until(() => events.states.at(-1) === 'connected' && events.states.length > 2);

    expect(b.requests('login')).toHaveLength(1);
    expect(c.requests('login')).toHaveLength(1);
    expect(a.requests('login')).toHaveLength(1);
  });

  it("client SDK edges - after a reconnect the user's own status, changed meanwhile by another device, reaches the listeners", async () => {
    const { changes, server, client, events } = await setup({ reconnect: { initialDelayMs: 0, maxDelayMs: 0 } });
    await client.login('alice', 'sig-a');
    server.send(0, { t: 'push', list: [status('alice', 1)] });
    await changes.until(() => events.statuses.length === 1);
    // While this device was away, another one set a custom status: the re-login answers with it.
    server.answer = (req, conn) =>
      req.op === 'login' ? { result: { deviceId: 'auto-0', heartbeatIntervalMs: 30_000, heartbeatTimeoutMs: 400_000, status: status('alice', 2, 'on the phone') } } : defaultAnswer(req, conn);
    server.sockets[0]?.terminate();
    await changes.until(() => events.statuses.length === 2);
    expect(events.statuses[1]).toEqual([status('alice', 2, 'on the phone')]);
    expect(events.states.at(-1)).toBe('connected');
  });

  it('client SDK edges - a re-login refused with 70001 fires onUserSigExpired once, logs out, and a fresh UserSig logs in again', async () => {
    const { changes, server, client, events } = await setup({ reconnect: { initialDelayMs: 0, maxDelayMs: 0 } });
    let expired = 0;
    let loginUserInListener: string | undefined = 'not called';
    client.addListener({
      onUserSigExpired() {
        expired += 1;
        loginUserInListener = client.getLoginUser();
        changes.notify();
      },
    });
    await client.login('alice', 'sig-old');
    // The ticket expired while the device was connected: the node refuses the re-login after a drop.
    server.answer = (req, conn) =>
      req.op === 'login' ? { error: { code: ErrorCode.USERSIG_EXPIRED, desc: 'UserSig expired' } } : defaultAnswer(req, conn);
    server.sockets[0]?.terminate();
    // The failed re-login's 'disconnected' comes before the listener, as it does for a kick.
    await changes.until(() => events.states.length === 5);

    expect(expired).toBe(1);
    expect(loginUserInListener).toBeUndefined();
    expect(events.kicked).toEqual([]);
    expect(client.getLoginUser()).toBeUndefined();
    expect(events.states).toEqual(['connecting', 'connected', 'disconnected', 'connecting', 'disconnected']);
    expect(server.requests('login').map((r) => r.frame.args)).toMatchObject([
      { userSig: 'sig-old' },
      { userSig: 'sig-old', deviceId: 'auto-0' },
    ]);
    await expect(client.getUserStatus(['bob'])).rejects.toMatchObject({ code: ErrorCode.NOT_LOGGED_IN });

    // The app fetched a new UserSig: logging in with it works, on a new connection.
    server.answer = defaultAnswer;
    await client.login('alice', 'sig-new', { deviceId: 'auto-0' });
    expect(client.getLoginUser()).toBe('alice');
    expect(server.requests('login').map((r) => [r.conn, (r.frame.args as { userSig: string }).userSig])).toEqual([[0, 'sig-old'], [1, 'sig-old'], [2, 'sig-new']]);
    await client.setSelfStatus({ customStatus: 'back' });
    expect(expired).toBe(1);
  });

  it('client SDK edges - a login() refused with 70001 only rejects: onUserSigExpired is for a ticket that expires after login', async () => {
    const { server, client, events } = await setup({ reconnect: { initialDelayMs: 0, maxDelayMs: 0 } });
    let expired = 0;
    client.addListener({ onUserSigExpired: () => { expired += 1; } });
    server.answer = () => ({ error: { code: ErrorCode.USERSIG_EXPIRED, desc: 'UserSig expired' } });
    await expect(client.login('alice', 'sig-old')).rejects.toMatchObject({ code: ErrorCode.USERSIG_EXPIRED });
    expect(expired).toBe(0);
    expect(events.kicked).toEqual([]);
    expect(client.getLoginUser()).toBeUndefined();
    expect(events.states).toEqual(['connecting', 'disconnected']);
  });

  it('client SDK edges - a reconnect option left undefined keeps its default instead of disabling the backoff', async () => {
    const { changes, server, client, events } = await setup({ reconnect: { initialDelayMs: undefined, maxDelayMs: 20 } });
    await client.login('alice', 'sig-a');
    const delays: unknown[] = [];
    const realSetTimeout = globalThis.setTimeout;
    vi.spyOn(globalThis, 'setTimeout').mockImplementation(((run: () => void, ms?: number) => {
      delays.push(ms);
      return realSetTimeout(run, ms);
    }) as typeof setTimeout);
    server.sockets[0]?.terminate();
    await changes.until(() => events.states.at(-1) === 'connected' && events.states.length > 2);

    // The first timer after the drop is the reconnect's: a NaN delay runs at once (no backoff at all).
    expect(typeof delays[0]).toBe('number');
    expect(delays[0]).toBeGreaterThanOrEqual(0);
    expect(delays[0]).toBeLessThan(20);
  });
});
