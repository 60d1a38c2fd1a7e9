import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { ErrorCode, PresenceClient, PresenceError, type PresenceClientOptions } from '../../src/client/index.js';
import { backoffCeiling, backoffDelay } from '../../src/client/backoff.js';
import { ReconnectScheduler } from '../../src/client/reconnectScheduler.js';
import { VersionTracker } from '../../src/client/versionTracker.js';
import { SubscribedUsers } from '../../src/client/subscribedUsers.js';
import { decodeFrame, encodeFrame } from '../../src/client/socket.js';
import type { ServerFrame } from '../../src/protocol.js';
import { Changes, SDK_APP_ID, TestServer, defaultAnswer, packr, record, status } from '../support/clientHarness.js';

/** A `ws` WebSocket that remembers its instances, so tests can see every socket the client opens. */
const clientSockets: WebSocket[] = [];
class TrackedWebSocket extends WebSocket {
  constructor(url: string) {
    super(url);
    clientSockets.push(this);
  }
}

let server: TestServer | undefined;
let client: PresenceClient | undefined;

async function setup(options: Partial<PresenceClientOptions> = {}) {
  const changes = new Changes();
  server = await TestServer.start(changes);
  client = new PresenceClient({ url: server.url, sdkAppID: SDK_APP_ID, WebSocket: TrackedWebSocket, ...options });
  return { changes, server, client, events: record(client, changes) };
}

afterEach(async () => {
  client?.close();
  await server?.stop();
  client = undefined;
  server = undefined;
  clientSockets.length = 0;
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
});

describe('client - pure parts', () => {
  it('client - backoff ceiling doubles per attempt up to maxDelayMs', () => {
    const policy = { initialDelayMs: 500, maxDelayMs: 15_000 };
    expect([0, 1, 2, 3, 4, 5, 6].map((a) => backoffCeiling(a, policy))).toEqual([500, 1000, 2000, 4000, 8000, 15_000, 15_000]);
    expect(backoffCeiling(5000, policy)).toBe(15_000);
  });

  it('client - backoff delay is full jitter between 0 and the ceiling', () => {
    const policy = { initialDelayMs: 500, maxDelayMs: 15_000 };
    expect(backoffDelay(3, policy, () => 0)).toBe(0);
    expect(backoffDelay(3, policy, () => 0.5)).toBe(2000);
    expect(backoffDelay(3, policy, () => 0.999_999)).toBeLessThan(4000);
    expect(backoffDelay(3, policy, () => 1)).toBeLessThan(4000);
    expect(backoffDelay(40, policy, () => 0.5)).toBe(7500);
  });

  it('client - reconnect scheduler grows per attempt and restarts after reset', () => {
    const scheduler = new ReconnectScheduler({ initialDelayMs: 100, maxDelayMs: 1000 }, () => 0.5);
    const delays = [0, 1, 2, 3, 4].map(() => scheduler.schedule(() => {}));
    scheduler.reset();
    delays.push(scheduler.schedule(() => {}));
    scheduler.cancel();
    expect(delays).toEqual([50, 100, 200, 400, 500, 50]);
  });

  it('client - version tracker drops stale and equal versions', () => {
    const tracker = new VersionTracker();
    expect(tracker.acceptNewer([status('bob', 2), status('carol', 1)])).toEqual([status('bob', 2), status('carol', 1)]);
    expect(tracker.acceptNewer([status('bob', 2, 'same version'), status('bob', 1), status('carol', 0)])).toEqual([]);
    expect(tracker.acceptNewer([status('bob', 3), status('bob', 3), status('bob', 4)])).toEqual([status('bob', 3), status('bob', 4)]);
    expect(tracker.versionOf('bob')).toBe(4);
    tracker.clear();
    expect(tracker.acceptNewer([status('bob', 1)])).toEqual([status('bob', 1)]);
  });

  it('client - subscribed users drop evicted ids and split into chunks of 100', () => {
    const subs = new SubscribedUsers();
    subs.added(Array.from({ length: 150 }, (_, i) => `u${i}`), ['u0', 'u1']);
    subs.added(['x'], []);
    subs.removed(['u2']);
    const chunks = subs.chunks(100);
    expect(chunks.map((c) => c.length)).toEqual([100, 48]);
    expect(chunks.flat()).not.toContain('u0');
    expect(chunks.flat().at(-1)).toBe('x');
    subs.removed([]);
    expect(subs.size).toBe(0);
  });

  it('client - frames decode from ArrayBuffer, Buffer and offset views', () => {
    const frame: ServerFrame = { t: 'push', list: [status('bob', 7)] };
    const bytes = packr.pack(frame);
    const arrayBuffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const padded = new Uint8Array(bytes.byteLength + 3);
    padded.set(bytes, 3);
    expect(decodeFrame(arrayBuffer)).toEqual(frame);
    expect(decodeFrame(bytes)).toEqual(frame);
    expect(decodeFrame(padded.subarray(3))).toEqual(frame);
    expect(decodeFrame('text frame')).toBeUndefined();
    expect(decodeFrame(new Uint8Array([0xc1]))).toBeUndefined();
    expect(packr.unpack(encodeFrame({ t: 'hb' }))).toEqual({ t: 'hb' });
  });
});

describe('client - against a test server', () => {
  it('client - login sends the login frame and starts heartbeats', async () => {
    const { changes, server, client, events } = await setup({ heartbeatIntervalMs: 20 });
    await expect(client.getUserStatus(['bob'])).rejects.toMatchObject({ code: ErrorCode.NOT_LOGGED_IN });
    await client.login('alice', 'sig-a', { platform: 'web' });
    expect(server.requests('login')[0]?.frame.args).toEqual({ sdkAppID: SDK_APP_ID, userID: 'alice', userSig: 'sig-a', platform: 'web' });
    expect(client.getLoginUser()).toBe('alice');
    expect(events.states).toEqual(['connecting', 'connected']);
    await changes.until(() => server.received.filter((r) => r.frame.t === 'hb').length >= 2);
  });

  it('client - without a WebSocket option and no global one it connects through the lazily imported ws', async () => {
    vi.stubGlobal('WebSocket', undefined);
    const { server } = await setup({ WebSocket: undefined });
    await client?.login('alice', 'sig-a');
    expect(server.requests('login')).toHaveLength(1);
    expect(clientSockets).toHaveLength(0);
  });

  it('client - a push is emitted and a stale push is dropped', async () => {
    const { changes, server, client, events } = await setup();
    await client.login('alice', 'sig-a');
    server.send(0, { t: 'push', list: [status('bob', 2)] });
    server.send(0, { t: 'push', list: [status('bob', 2), status('bob', 1)] });
    server.send(0, { t: 'push', list: [status('bob', 3, 'back')] });
    await changes.until(() => events.statuses.length >= 2);
    expect(events.statuses).toEqual([[status('bob', 2)], [status('bob', 3, 'back')]]);
  });

  it('client - an error answer rejects with its PresenceError', async () => {
    const { server, client } = await setup();
    await client.login('alice', 'sig-a');
    server.answer = (req, conn) =>
      req.op === 'subscribeUserStatus' ? { error: { code: ErrorCode.RATE_LIMITED, desc: 'rate limited', retryAfterMs: 1200 } } : defaultAnswer(req, conn);
    const failure = await client.subscribeUserStatus(['bob']).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(PresenceError);
    expect(failure).toMatchObject({ code: ErrorCode.RATE_LIMITED, desc: 'rate limited', retryAfterMs: 1200 });
  });

  it('client - a failed login rejects with the server error and closes the socket', async () => {
    const { changes, server, client, events } = await setup();
    server.answer = () => ({ error: { code: ErrorCode.USERSIG_EXPIRED, desc: 'UserSig expired' } });
    await expect(client.login('alice', 'old')).rejects.toMatchObject({ code: ErrorCode.USERSIG_EXPIRED });
    expect(client.getLoginUser()).toBeUndefined();
    expect(events.states).toEqual(['connecting', 'disconnected']);
    await changes.until(() => server.closedConns.has(0));
  });

  it('client - a call without an answer rejects with 6012 after requestTimeoutMs', async () => {
    const { server, client } = await setup({ requestTimeoutMs: 150 });
    await client.login('alice', 'sig-a');
    server.answer = (req, conn) => (req.op === 'setSelfStatus' ? 'no answer' : defaultAnswer(req, conn));
    await expect(client.setSelfStatus({ customStatus: 'busy' })).rejects.toMatchObject({ code: ErrorCode.REQUEST_TIMEOUT });
    expect(server.requests('setSelfStatus')[0]?.frame.args).toEqual({ customStatus: 'busy' });
  });

  it('client - a drop reconnects, logs in with the same deviceId and emits only newer re-read statuses', async () => {
    const { changes, server, client, events } = await setup({ reconnect: { initialDelayMs: 5, maxDelayMs: 20 } });
    await client.login('alice', 'sig-a');
    server.answer = (req, conn) =>
      req.op === 'subscribeUserStatus' ? { result: { evicted: ['dave'] } } : defaultAnswer(req, conn);
    await client.subscribeUserStatus(['bob', 'carol', 'dave']);
    // Her own status too, as a node pushes it at login: the re-login's answer of it is not newer.
    server.send(0, { t: 'push', list: [status('bob', 1), status('carol', 4), status('alice', 1)] });
    await changes.until(() => events.statuses.length === 1);

    server.answer = (req, conn) =>
      req.op === 'getUserStatus' ? { result: { statuses: [status('bob', 2, 'changed'), status('carol', 4)] } } : defaultAnswer(req, conn);
    server.sockets[0]?.terminate();
    await changes.until(() => events.states.at(-1) === 'disconnected');
    const queued = client.setSelfStatus({ customStatus: 'queued while away' });
    await changes.until(() => events.statuses.length === 2);

    const logins = server.requests('login');
    expect(logins.map((l) => l.conn)).toEqual([0, 1]);
    expect(logins[1]?.frame.args).toMatchObject({ userID: 'alice', userSig: 'sig-a', deviceId: 'auto-0' });
    expect(server.requests('getUserStatus').map((r) => r.frame.args)).toEqual([{ userIDList: ['bob', 'carol'] }]);
    expect(events.statuses[1]).toEqual([status('bob', 2, 'changed')]);
    expect(events.states).toEqual(['connecting', 'connected', 'disconnected', 'connecting', 'connected']);
    await queued;
    expect(server.requests('setSelfStatus').map((r) => r.conn)).toEqual([1]);
  });

  it('client - with a list of URLs it reconnects to the next node when its node goes away', async () => {
    const changes = new Changes();
    const first = await TestServer.start(changes);
    server = await TestServer.start(changes);
    client = new PresenceClient({
      url: [first.url, server.url],
      sdkAppID: SDK_APP_ID,
      WebSocket: TrackedWebSocket,
      reconnect: { initialDelayMs: 5, maxDelayMs: 20 },
    });
    const events = record(client, changes);
    await client.login('alice', 'sig-a');
    expect(first.requests('login')).toHaveLength(1);
    await first.stop();
    await changes.until(() => server!.requests('login').length === 1 && events.states.at(-1) === 'connected');
    expect(server.requests('login')[0]?.frame.args).toMatchObject({ userID: 'alice', deviceId: 'auto-0' });
    await client.setSelfStatus({ customStatus: 'moved' });
    expect(server.requests('setSelfStatus')).toHaveLength(1);
  });

  it('client - a call unanswered when the node closes with 1001 is sent again after the re-login, and succeeds', async () => {
    const { changes, server, client, events } = await setup({ reconnect: { initialDelayMs: 5, maxDelayMs: 20 } });
    await client.login('alice', 'sig-a');
    server.answer = (req, conn) => (req.op === 'setSelfStatus' && conn === 0 ? 'no answer' : defaultAnswer(req, conn));
    const call = client.setSelfStatus({ customStatus: 'across a drain' });
    await changes.until(() => server.requests('setSelfStatus').length === 1);
    server.sockets[0]?.close(1001, 'node shutting down');
    await call;
    expect(server.requests('setSelfStatus').map((r) => r.conn)).toEqual([0, 1]);
    expect(events.states).toEqual(['connecting', 'connected', 'disconnected', 'connecting', 'connected']);
  });

  it('client - a call unanswered when the connection drops otherwise fails with 6012', async () => {
    const { changes, server, client } = await setup({ reconnect: { initialDelayMs: 5, maxDelayMs: 20 } });
    await client.login('alice', 'sig-a');
    server.answer = (req, conn) => (req.op === 'setSelfStatus' ? 'no answer' : defaultAnswer(req, conn));
    const call = client.setSelfStatus({ customStatus: 'lost' });
    await changes.until(() => server.requests('setSelfStatus').length === 1);
    server.sockets[0]?.terminate();
    await expect(call).rejects.toMatchObject({ code: ErrorCode.REQUEST_TIMEOUT });
  });

  it('client - a URL list must not be empty', () => {
    expect(() => new PresenceClient({ url: [], sdkAppID: SDK_APP_ID })).toThrow(TypeError);
  });

  it('client - a kicked frame fires onKickedOffline and does not reconnect', async () => {
    const { changes, server, client, events } = await setup({ reconnect: { initialDelayMs: 0, maxDelayMs: 0 } });
    await client.login('alice', 'sig-a', { deviceId: 'phone' });
    server.answer = (req, conn) => (req.op === 'setSelfStatus' ? 'no answer' : defaultAnswer(req, conn));
    const pending = client.setSelfStatus({ customStatus: 'x' }).catch((err: unknown) => err);
    await changes.until(() => server.requests('setSelfStatus').length === 1);

    const clientSocket = clientSockets[0];
    const clientSocketClosed = new Promise((resolve) => clientSocket?.once('close', resolve));
    server.send(0, { t: 'kicked', error: { code: ErrorCode.KICKED_BY_SAME_DEVICE, desc: 'replaced' } });
    server.sockets[0]?.close(4001, 'replaced');
    await changes.until(() => events.kicked.length === 1);
    await clientSocketClosed;

    expect(events.kicked[0]).toMatchObject({ code: ErrorCode.KICKED_BY_SAME_DEVICE });
    expect(await pending).toMatchObject({ code: ErrorCode.KICKED_BY_SAME_DEVICE });
    expect(client.getLoginUser()).toBeUndefined();
    expect(events.states.at(-1)).toBe('disconnected');
    // Once the socket is closed, nothing can schedule a reconnect: one socket, one login.
    expect(clientSockets).toHaveLength(1);
    expect(events.states).toEqual(['connecting', 'connected', 'disconnected']);
  });

  it('client - a re-login refused with 70052 stops reconnecting and fires onKickedOffline', async () => {
    const { changes, server, client, events } = await setup({ reconnect: { initialDelayMs: 0, maxDelayMs: 0 } });
    await client.login('alice', 'sig-a');
    server.answer = (req, conn) =>
      req.op === 'login' ? { error: { code: ErrorCode.USERSIG_REVOKED, desc: 'revoked' } } : defaultAnswer(req, conn);
    server.sockets[0]?.terminate();
    await changes.until(() => events.kicked.length === 1);
    expect(events.kicked[0]).toMatchObject({ code: ErrorCode.USERSIG_REVOKED });
    expect(client.getLoginUser()).toBeUndefined();
    expect(events.states).toEqual(['connecting', 'connected', 'disconnected', 'connecting', 'disconnected']);
    await expect(client.getUserStatus(['bob'])).rejects.toMatchObject({ code: ErrorCode.NOT_LOGGED_IN });
  });

  it('client - logout sends logout and closes; close rejects pending calls', async () => {
    const { changes, server, client, events } = await setup();
    await client.login('alice', 'sig-a');
    await client.logout();
    expect(server.requests('logout')).toHaveLength(1);
    expect(client.getLoginUser()).toBeUndefined();
    await changes.until(() => server.closedConns.has(0));
    expect(events.states.at(-1)).toBe('disconnected');

    await client.login('alice', 'sig-a');
    server.answer = (req, conn) => (req.op === 'getUserStatus' ? 'no answer' : defaultAnswer(req, conn));
    const pending = client.getUserStatus(['bob']);
    client.close();
    client.close();
    await expect(pending).rejects.toMatchObject({ code: ErrorCode.REQUEST_TIMEOUT, desc: 'client closed' });
    await changes.until(() => server.closedConns.has(1));
    expect(server.requests('logout')).toHaveLength(1);
  });
});
