import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserStatusType, type UserStatus } from '../../src/client/index.js';
import { spawnClientProcess, type ClientProcess } from '../support/clientProcess.js';
import { expectCode, loginDevice, type DeviceOptions, type TestDevice } from '../support/clients.js';
import { startDeployment, type Deployment, type TestApp } from '../support/deployment.js';
import { RawSocket } from '../support/rawSocket.js';

/** What the service does when a node stops answering, a device dies, or a peer sends garbage. */

let deployment: Deployment;
let app: TestApp;
const devices: TestDevice[] = [];
const processes: ClientProcess[] = [];
const sockets: RawSocket[] = [];

beforeAll(async () => {
  deployment = await startDeployment();
  app = await deployment.newApp();
});

afterAll(async () => {
  // A node left frozen would ignore the SIGTERM of stop().
  for (const node of deployment?.nodes ?? []) resume(node.child);
  for (const device of devices) device.client.close();
  for (const socket of sockets) socket.close();
  await Promise.all(processes.map((p) => p.kill()));
  await deployment?.stop();
});

const login = async (userID: string, options: DeviceOptions = {}) => {
  const device = await loginDevice(deployment, app, userID, options);
  devices.push(device);
  return device;
};

function resume(child: { exitCode: number | null; signalCode: string | null; kill(signal: NodeJS.Signals): boolean }): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGCONT');
}

/** Runs `work` while node `i` is frozen (SIGSTOP), and always thaws it (SIGCONT) afterwards. */
async function whileFrozen<T>(i: number, work: () => Promise<T>): Promise<T> {
  const child = deployment.nodes[i % deployment.nodes.length]!.child;
  child.kill('SIGSTOP');
  try {
    return await work();
  } finally {
    resume(child);
  }
}

/** Sends `request` as it is to node `i` and resolves with the status line of its answer. */
function rawHttp(i: number, request: string): Promise<string> {
  const { hostname, port } = new URL(deployment.nodes[i % deployment.nodes.length]!.httpUrl);
  return new Promise((resolve, reject) => {
    let answer = '';
    const socket = connect(Number(port), hostname, () => socket.write(request));
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve(answer.split('\r\n')[0]!));
  });
}

/** Asks node `i` to upgrade `path` and resets the connection at once, as a client that crashes would. */
function upgradeThenReset(i: number, path: string): Promise<void> {
  const { hostname, port } = new URL(deployment.nodes[i % deployment.nodes.length]!.httpUrl);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
      socket.resetAndDestroy();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
  });
}

async function healthz(i: number): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${deployment.nodes[i % deployment.nodes.length]!.httpUrl}/healthz`);
  return { status: response.status, body: await response.json() };
}

describe('failures', () => {
  it('failures - a call to a node that does not answer rejects with 6012', async () => {
    const alice = await login('fl1-alice', { node: 0, requestTimeoutMs: 1_000 });

    const startedAt = Date.now();
    const error = await whileFrozen(0, () => expectCode(alice.client.getUserStatus(['fl1-alice']), 6012));

    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(950);
    expect(error.desc).toBeTruthy();
  });

  it('failures - a node thawed after a freeze serves its clients again', async () => {
    const alice = await login('fl2-alice', { node: 0, requestTimeoutMs: 1_000 });

    await whileFrozen(0, () => expectCode(alice.client.setSelfStatus({ customStatus: 'frozen' }), 6012));

    await alice.client.setSelfStatus({ customStatus: 'thawed' });
    const [status] = await alice.client.getUserStatus(['fl2-alice']);
    expect(status).toMatchObject({ statusType: UserStatusType.ONLINE, customStatus: 'thawed' });
    const newcomer = await login('fl2-bob', { node: 0 });
    expect((await newcomer.client.getUserStatus(['fl2-alice']))[0]).toMatchObject({ customStatus: 'thawed' });
  });

  it('failures - a call made while the node is frozen is answered once it thaws', async () => {
    const alice = await login('fl3-alice', { node: 0, requestTimeoutMs: 20_000 });

    const { call } = await whileFrozen(0, async () => {
      const call = alice.client.setSelfStatus({ customStatus: 'queued while frozen' });
      // One turn of the event loop: the frame is written to the frozen node's socket.
      await new Promise((resolve) => setImmediate(resolve));
      return { call };
    });

    await call;
    expect((await alice.client.getUserStatus(['fl3-alice']))[0]).toMatchObject({ customStatus: 'queued while frozen' });
  });

  it('failures - a killed client process does not disturb other users', async () => {
    const others = [await login('fl4-olga', { node: 1 }), await login('fl4-omar', { node: 2 })];
    await others[0]!.client.setSelfStatus({ customStatus: 'olga here' });
    await others[1]!.client.setSelfStatus({ customStatus: 'omar here' });
    const watcher = await login('fl4-watcher', { node: 2 });
    const victim = await spawnClientProcess(deployment.url(0), app.sdkAppID, 'fl4-victim', app.sig('fl4-victim'));
    processes.push(victim);
    await watcher.client.subscribeUserStatus(['fl4-victim', 'fl4-olga', 'fl4-omar']);
    const before = await watcher.client.getUserStatus(['fl4-olga', 'fl4-omar']);

    await victim.kill('SIGKILL');
    await watcher.waitForStatus('fl4-victim', (s) => s.statusType === UserStatusType.OFFLINE, 'OFFLINE');

    expect(await watcher.client.getUserStatus(['fl4-olga', 'fl4-omar'])).toEqual(before);
    expect(before.map((s: UserStatus) => s.statusType)).toEqual([UserStatusType.ONLINE, UserStatusType.ONLINE]);
    expect(watcher.statusesOf('fl4-olga')).toEqual([]);
    expect(watcher.statusesOf('fl4-omar')).toEqual([]);
    for (const other of others) expect(other.states).not.toContain('disconnected');
  });

  it('failures - a socket cut without a close handshake counts as a drop', async () => {
    const watcher = await login('fl5-watcher', { node: 0 });
    const raw = await RawSocket.open(deployment.url(1));
    sockets.push(raw);
    const answer = await raw.request('login', { sdkAppID: app.sdkAppID, userID: 'fl5-cut', userSig: app.sig('fl5-cut') });
    expect(answer.ok).toBe(true);
    await watcher.client.subscribeUserStatus(['fl5-cut']);

    raw.terminate();

    const offline = await watcher.waitForStatus('fl5-cut', (s) => s.statusType !== UserStatusType.ONLINE, 'the end of ONLINE');
    expect(offline.statusType).toBe(UserStatusType.OFFLINE);
  });

  it('failures - after bad traffic every node still answers /healthz and SDK calls', async () => {
    const alice = await login('fl6-alice', { node: 0 });
    const bob = await login('fl6-bob', { node: 1 });
    await bob.client.subscribeUserStatus(['fl6-alice']);

    for (let i = 0; i < deployment.nodes.length; i++) {
      const raw = await RawSocket.open(deployment.url(i));
      sockets.push(raw);
      raw.sendBytes(Uint8Array.of(0x82, 0xa1, 0x74));
      raw.sendText('{"t":"req","id":1,"op":"login"}');
      raw.send([1, 2, 3]);
      raw.send({ t: 'req', op: 'getUserStatus' });
      raw.send({ t: 'req', id: 2, op: 'explode', args: { userIDList: new Array(10_000).fill('x') } });
      raw.sendBytes(new Uint8Array(1024 * 1024 + 1));
      expect((await raw.closed()).code).toBe(1009);
      // A target the URL parser refuses, once a crash of the node: refused with 400.
      expect(await rawHttp(i, 'GET //% HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toBe('HTTP/1.1 400 Bad Request');
      const upgrade = 'GET //% HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
      expect(await rawHttp(i, upgrade)).toBe('HTTP/1.1 400 Bad Request');
      // Refused upgrades whose client resets the connection at once: each was a crash of the node.
      for (const path of ['/nope', '//%']) await upgradeThenReset(i, path);
    }

    for (let i = 0; i < deployment.nodes.length; i++) expect(await healthz(i)).toEqual({ status: 200, body: { ok: true } });
    await alice.client.setSelfStatus({ customStatus: 'still here' });
    await bob.waitForStatus('fl6-alice', (s) => s.customStatus === 'still here');
    const carol = await login('fl6-carol', { node: 2 });
    expect((await carol.client.getUserStatus(['fl6-alice']))[0]).toMatchObject({
      statusType: UserStatusType.ONLINE,
      customStatus: 'still here',
    });
  });
});
