import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PresenceClient, UserStatusType, type UserStatus, type WebSocketConstructor } from '../../src/client/index.js';
import { AdminClient } from '../support/admin.js';
import { spawnClientProcess, type ClientProcess } from '../support/clientProcess.js';
import { loginDevice, PUSH_TIMEOUT_MS, TestDevice, type DeviceOptions } from '../support/clients.js';
import { startDeployment, type Deployment, type TestApp } from '../support/deployment.js';
import { RawSocket } from '../support/rawSocket.js';

/** Multi-device aggregation (SPEC.md §2) and the lifecycle of devices: drops, kills, timeouts, retention. */

const HEARTBEAT_TIMEOUT_MS = 1_500;
const RETENTION_MS = 800;
const TIGHT_TIMEOUT_MS = 1_000;

let deployment: Deployment;
let app: TestApp;
/** Short heartbeats: silent devices time out in 1.5 s. */
let heartbeatApp: TestApp;
/** Short subscription retention: 800 ms. */
let retentionApp: TestApp;
/** A 1 s heartbeat timeout with heartbeats every 400 ms: still a valid configuration. */
let tightApp: TestApp;
const devices: TestDevice[] = [];
const processes: ClientProcess[] = [];
const sockets: RawSocket[] = [];

beforeAll(async () => {
  deployment = await startDeployment();
  [app, heartbeatApp, retentionApp, tightApp] = await Promise.all([
    deployment.newApp(),
    deployment.newApp({ limits: { heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS, heartbeatIntervalMs: 500 } }),
    deployment.newApp({ limits: { subscriptionRetentionMs: RETENTION_MS } }),
    deployment.newApp({ limits: { heartbeatTimeoutMs: TIGHT_TIMEOUT_MS, heartbeatIntervalMs: 400 } }),
  ]);
});

afterAll(async () => {
  for (const device of devices) device.client.close();
  for (const socket of sockets) socket.close();
  await Promise.all(processes.map((p) => p.kill()));
  await deployment?.stop();
});

const login = async (userID: string, options: DeviceOptions & { app?: TestApp } = {}) => {
  const device = await loginDevice(deployment, options.app ?? app, userID, options);
  devices.push(device);
  return device;
};

/** A device that sends no heartbeats and records the close codes of its sockets. */
const loginSilent = async (testApp: TestApp, userID: string, node: number, closeCodes: number[]) => {
  class RecordingWebSocket extends WebSocket {
    constructor(url: string) {
      super(url);
      this.on('close', (code) => closeCodes.push(code));
    }
  }
  const client = new PresenceClient({
    url: deployment.url(node),
    sdkAppID: testApp.sdkAppID,
    heartbeatIntervalMs: 0,
    reconnect: { initialDelayMs: 50, maxDelayMs: 1_000 },
    WebSocket: RecordingWebSocket as unknown as WebSocketConstructor,
  });
  const device = new TestDevice(client, userID);
  devices.push(device);
  await client.login(userID, testApp.sig(userID));
  return device;
};

/** The number of sockets node `i` holds, from its own `/admin/cluster` view. */
const connectionsOn = async (i: number): Promise<number> => {
  const node = deployment.nodes[i % deployment.nodes.length]!;
  const view = (await new AdminClient(node.httpUrl, deployment.adminKey).cluster()) as {
    nodes?: Array<{ nodeId?: string; connections?: number }>;
  };
  const connections = view.nodes?.find((n) => n.nodeId === node.nodeId)?.connections;
  if (typeof connections !== 'number') throw new Error(`/admin/cluster of ${node.nodeId} shows no connection count: ${JSON.stringify(view)}`);
  return connections;
};

/** Polls until node `i` holds at most `count` sockets: the node has seen a close. */
const untilConnectionsAtMost = async (i: number, count: number): Promise<void> => {
  const deadline = Date.now() + PUSH_TIMEOUT_MS;
  let seen = await connectionsOn(i);
  while (seen > count) {
    if (Date.now() > deadline) throw new Error(`node ${i} still holds ${seen} sockets, expected at most ${count}`);
    await sleep(20);
    seen = await connectionsOn(i);
  }
};

const statusOf = async (asker: TestDevice, userID: string): Promise<UserStatus> => (await asker.client.getUserStatus([userID]))[0]!;

describe('devices', () => {
  it('devices - one of two devices dropping leaves the user ONLINE with no change', async () => {
    const phone = await login('dv1-alice', { node: 0, deviceId: 'phone' });
    const laptop = await login('dv1-alice', { node: 1, deviceId: 'laptop' });
    const bob = await login('dv1-bob', { node: 2 });
    await bob.client.subscribeUserStatus(['dv1-alice']);
    const before = await statusOf(bob, 'dv1-alice');
    expect(before.statusType).toBe(UserStatusType.ONLINE);

    const sockets = await connectionsOn(0);
    phone.client.close();
    await untilConnectionsAtMost(0, sockets - 1);
    // A change after the drop: any push the drop caused would reach bob before it.
    await laptop.client.setSelfStatus({ customStatus: 'dv1-marker' });
    await bob.waitForStatus('dv1-alice', (s) => s.customStatus === 'dv1-marker', 'the marker');

    expect(bob.statusesOf('dv1-alice')).toEqual([
      { ...before, customStatus: 'dv1-marker', version: before.version + 1 },
    ]);
    expect(await statusOf(bob, 'dv1-alice')).toMatchObject({ statusType: UserStatusType.ONLINE, version: before.version + 1 });
  });

  it('devices - the last device logging out after another dropped leaves the user OFFLINE', async () => {
    const phone = await login('dv2-alice', { node: 0, deviceId: 'phone' });
    const laptop = await login('dv2-alice', { node: 1, deviceId: 'laptop' });
    const bob = await login('dv2-bob', { node: 2 });
    await bob.client.subscribeUserStatus(['dv2-alice']);

    phone.client.close();
    await laptop.client.logout();

    const offline = await bob.waitForStatus('dv2-alice', (s) => s.statusType !== UserStatusType.ONLINE, 'the end of ONLINE');
    expect(offline.statusType).toBe(UserStatusType.OFFLINE);
    expect(offline.lastSeenAt).toBeGreaterThan(0);
    expect(await statusOf(bob, 'dv2-alice')).toMatchObject({ statusType: UserStatusType.OFFLINE });
  });

  it('devices - every device logging out makes the user UNLOGINED in one change', async () => {
    const phone = await login('dv3-alice', { node: 0, deviceId: 'phone' });
    const laptop = await login('dv3-alice', { node: 1, deviceId: 'laptop' });
    const bob = await login('dv3-bob', { node: 2 });
    await bob.client.subscribeUserStatus(['dv3-alice']);
    const before = await statusOf(bob, 'dv3-alice');

    await phone.client.logout();
    await laptop.client.logout();

    const after = await bob.waitForStatus('dv3-alice', (s) => s.statusType !== UserStatusType.ONLINE, 'the end of ONLINE');
    expect(after).toMatchObject({ statusType: UserStatusType.UNLOGINED, version: before.version + 1 });
    expect(bob.statusesOf('dv3-alice')).toHaveLength(1);
  });

  it('devices - a dropped device that logs in again no longer keeps its user OFFLINE', async () => {
    const phone = await login('dv17-alice', { node: 0, deviceId: 'phone' });
    const laptop = await login('dv17-alice', { node: 1, deviceId: 'laptop' });
    const bob = await login('dv17-bob', { node: 2 });
    await bob.client.subscribeUserStatus(['dv17-alice']);

    phone.client.close();
    const phoneAgain = await login('dv17-alice', { node: 2, deviceId: 'phone' });
    await phoneAgain.client.logout();
    await laptop.client.logout();

    const after = await bob.waitForStatus('dv17-alice', (s) => s.statusType !== UserStatusType.ONLINE, 'the end of ONLINE');
    expect(after.statusType).toBe(UserStatusType.UNLOGINED);
  });

  it('devices - logout of the only device makes the user UNLOGINED with lastSeenAt', async () => {
    const alice = await login('dv4-alice', { node: 0 });
    const bob = await login('dv4-bob', { node: 1 });
    await bob.client.subscribeUserStatus(['dv4-alice']);

    const loggingOutAt = Date.now();
    await alice.client.logout();
    const loggedOutAt = Date.now();

    const pushed = await bob.waitForStatus('dv4-alice', (s) => s.statusType !== UserStatusType.ONLINE, 'the end of ONLINE');
    expect(pushed.statusType).toBe(UserStatusType.UNLOGINED);
    expect(pushed.lastSeenAt).toBeGreaterThanOrEqual(loggingOutAt);
    expect(pushed.lastSeenAt).toBeLessThanOrEqual(loggedOutAt);
    expect(await statusOf(bob, 'dv4-alice')).toEqual(pushed);
  });

  it('devices - a custom status is cleared, and subscribers told, when its user drops', async () => {
    const alice = await login('dv5-alice', { node: 0 });
    const bob = await login('dv5-bob', { node: 1 });
    await bob.client.subscribeUserStatus(['dv5-alice']);
    await alice.client.setSelfStatus({ customStatus: 'in a meeting' });
    const busy = await bob.waitForStatus('dv5-alice', (s) => s.customStatus === 'in a meeting');

    alice.client.close();

    const offline = await bob.waitForStatus('dv5-alice', (s) => s.statusType === UserStatusType.OFFLINE, 'OFFLINE');
    expect(offline).toMatchObject({ customStatus: '', version: busy.version + 1 });
    expect(await statusOf(bob, 'dv5-alice')).toMatchObject({ statusType: UserStatusType.OFFLINE, customStatus: '' });
  });

  it('devices - a custom status is cleared, and subscribers told, when its user logs out', async () => {
    const alice = await login('dv6-alice', { node: 0 });
    const bob = await login('dv6-bob', { node: 1 });
    await bob.client.subscribeUserStatus(['dv6-alice']);
    await alice.client.setSelfStatus({ customStatus: 'away' });
    const away = await bob.waitForStatus('dv6-alice', (s) => s.customStatus === 'away');

    await alice.client.logout();

    const unlogined = await bob.waitForStatus('dv6-alice', (s) => s.statusType === UserStatusType.UNLOGINED, 'UNLOGINED');
    expect(unlogined).toMatchObject({ customStatus: '', version: away.version + 1 });
  });

  it("devices - a user's other device receives its custom status change", async () => {
    const phone = await login('dv7-alice', { node: 0, deviceId: 'phone' });
    const laptop = await login('dv7-alice', { node: 1, deviceId: 'laptop' });

    await phone.client.setSelfStatus({ customStatus: 'typing on the phone' });

    const seen = await laptop.waitForStatus('dv7-alice', (s) => s.customStatus === 'typing on the phone');
    expect(seen.statusType).toBe(UserStatusType.ONLINE);
  });

  it('devices - the device that changes its custom status is told too', async () => {
    const phone = await login('dv8-alice', { node: 0, deviceId: 'phone' });
    await login('dv8-alice', { node: 1, deviceId: 'laptop' });

    await phone.client.setSelfStatus({ customStatus: 'from the phone' });

    const seen = await phone.waitForStatus('dv8-alice', (s) => s.customStatus === 'from the phone');
    expect(seen.statusType).toBe(UserStatusType.ONLINE);
  });

  it('devices - a device process killed with SIGKILL makes its user OFFLINE for watchers', async () => {
    const carol = await spawnClientProcess(deployment.url(1), app.sdkAppID, 'dv9-carol', app.sig('dv9-carol'), 'desktop');
    processes.push(carol);
    const dave = await login('dv9-dave', { node: 2 });
    await dave.client.subscribeUserStatus(['dv9-carol']);
    expect(await statusOf(dave, 'dv9-carol')).toMatchObject({ statusType: UserStatusType.ONLINE });

    await carol.kill('SIGKILL');

    const offline = await dave.waitForStatus('dv9-carol', (s) => s.statusType !== UserStatusType.ONLINE, 'the end of ONLINE');
    expect(offline.statusType).toBe(UserStatusType.OFFLINE);
    expect(offline.lastSeenAt).toBeGreaterThan(0);
    expect((await deployment.admin.status(app.sdkAppID, ['dv9-carol']))[0]).toMatchObject({ statusType: UserStatusType.OFFLINE });
  });

  it('devices - a device that sends no heartbeats is dropped after heartbeatTimeoutMs and closed with 4003', async () => {
    const watcher = await login('dv10-watcher', { node: 1, app: heartbeatApp });
    const closeCodes: number[] = [];
    const loggedInAt = Date.now();
    const silent = await loginSilent(heartbeatApp, 'dv10-silent', 0, closeCodes);
    await watcher.client.subscribeUserStatus(['dv10-silent']);

    try {
      const offline = await watcher.waitForStatus('dv10-silent', (s) => s.statusType !== UserStatusType.ONLINE, 'the end of ONLINE');
      expect(offline.statusType).toBe(UserStatusType.OFFLINE);
      expect(offline.lastSeenAt - loggedInAt).toBeGreaterThanOrEqual(HEARTBEAT_TIMEOUT_MS - 50);
      await silent.until(() => closeCodes.length > 0, 'the silent socket to be closed');
      expect(closeCodes[0]).toBe(4003);
    } finally {
      // Its SDK reconnects after a 4003; stop it so it does not flap through the next tests.
      silent.client.close();
    }
  });

  it('devices - a device that heartbeats stays ONLINE past heartbeatTimeoutMs', async () => {
    const watcher = await login('dv11-watcher', { node: 2, app: heartbeatApp });
    const beating = await login('dv11-beating', { node: 1, app: heartbeatApp });
    const beatingSince = Date.now();
    const silent = await loginSilent(heartbeatApp, 'dv11-silent', 0, []);
    await watcher.client.subscribeUserStatus(['dv11-beating', 'dv11-silent']);
    const before = await statusOf(watcher, 'dv11-beating');

    try {
      // The silent device logged in after the beating one: once it is OFFLINE, the timeout has passed for both.
      await watcher.waitForStatus('dv11-silent', (s) => s.statusType === UserStatusType.OFFLINE, 'OFFLINE');
      expect(Date.now() - beatingSince).toBeGreaterThanOrEqual(HEARTBEAT_TIMEOUT_MS);
      expect(await statusOf(watcher, 'dv11-beating')).toEqual(before);
      expect(before.statusType).toBe(UserStatusType.ONLINE);
      expect(watcher.statusesOf('dv11-beating')).toEqual([]);
      expect(beating.states).not.toContain('disconnected');
    } finally {
      silent.client.close();
    }
  });

  it('devices - a device heartbeating at the interval its login gave stays ONLINE under a 1 s timeout', async () => {
    const beating = await login('dv15-beating', { node: 0, app: tightApp });
    const since = Date.now();
    const [before] = await deployment.admin.status(tightApp.sdkAppID, ['dv15-beating']);

    // The heartbeat deadline is the timer under test: let it pass twice.
    await sleep(Math.max(0, since + 2 * TIGHT_TIMEOUT_MS - Date.now()));

    expect((await deployment.admin.status(tightApp.sdkAppID, ['dv15-beating']))[0]).toEqual(before);
    expect(before!.statusType).toBe(UserStatusType.ONLINE);
    expect(beating.states).not.toContain('disconnected');
  });

  it('devices - a device that sends calls but no heartbeats stays ONLINE', async () => {
    const socket = await RawSocket.open(deployment.url(1));
    sockets.push(socket);
    const loginAnswer = await socket.request('login', { sdkAppID: tightApp.sdkAppID, userID: 'dv16-busy', userSig: tightApp.sig('dv16-busy') });
    expect(loginAnswer).toMatchObject({ ok: true });
    const since = Date.now();

    // Any frame counts as a heartbeat (docs/protocol.md): a call every 250 ms, no `hb`, for two timeouts.
    const refused: unknown[] = [];
    while (Date.now() - since < 2 * TIGHT_TIMEOUT_MS) {
      const answer = await socket.request('getUserStatus', { userIDList: ['dv16-busy'] });
      const status = (answer.result?.statuses as UserStatus[] | undefined)?.[0];
      if (!answer.ok || status?.statusType !== UserStatusType.ONLINE) refused.push({ after: Date.now() - since, answer });
      await sleep(250);
    }

    expect(refused).toEqual([]);
    expect((await deployment.admin.status(tightApp.sdkAppID, ['dv16-busy']))[0]).toMatchObject({ statusType: UserStatusType.ONLINE });
  });

  it('devices - subscriptions survive a logout shorter than subscriptionRetentionMs', async () => {
    const x = await login('dv12-x', { node: 0, app: retentionApp });
    const watcher = await login('dv12-watcher', { node: 1, app: retentionApp });
    await watcher.client.subscribeUserStatus(['dv12-x']);

    const loggedOutAt = Date.now();
    await watcher.client.logout();
    await watcher.client.login('dv12-watcher', retentionApp.sig('dv12-watcher'));
    expect(Date.now() - loggedOutAt, 'the re-login must come within the retention').toBeLessThan(RETENTION_MS);

    await x.client.setSelfStatus({ customStatus: 'dv12-after' });
    await watcher.waitForStatus('dv12-x', (s) => s.customStatus === 'dv12-after');
  });

  it('devices - subscriptions survive a drop shorter than subscriptionRetentionMs', async () => {
    const x = await login('dv13-x', { node: 0, app: retentionApp });
    const watcher = await login('dv13-watcher', { node: 1, app: retentionApp });
    await watcher.client.subscribeUserStatus(['dv13-x']);

    const droppedAt = Date.now();
    watcher.client.close();
    await watcher.client.login('dv13-watcher', retentionApp.sig('dv13-watcher'));
    expect(Date.now() - droppedAt, 'the re-login must come within the retention').toBeLessThan(RETENTION_MS);

    await x.client.setSelfStatus({ customStatus: 'dv13-after' });
    await watcher.waitForStatus('dv13-x', (s) => s.customStatus === 'dv13-after');
  });

  it('devices - subscriptions are cleared once subscriptionRetentionMs has passed', async () => {
    const x = await login('dv14-x', { node: 0, app: retentionApp });
    const marker = await login('dv14-marker', { node: 2, app: retentionApp });
    // A second subscriber of x on the watcher's node shows when x's change has been delivered there.
    const witness = await login('dv14-witness', { node: 1, app: retentionApp });
    const watcher = await login('dv14-watcher', { node: 1, app: retentionApp });
    await witness.client.subscribeUserStatus(['dv14-x']);
    await watcher.client.subscribeUserStatus(['dv14-x']);

    const loggedOutAt = Date.now();
    await watcher.client.logout();
    // The retention is the timer under test: let it run out (with margin), then come back.
    await sleep(Math.max(0, loggedOutAt + RETENTION_MS + 400 - Date.now()));
    await watcher.client.login('dv14-watcher', retentionApp.sig('dv14-watcher'));
    await watcher.client.subscribeUserStatus(['dv14-marker']);

    await x.client.setSelfStatus({ customStatus: 'dv14-x-change' });
    await witness.waitForStatus('dv14-x', (s) => s.customStatus === 'dv14-x-change');
    await marker.client.setSelfStatus({ customStatus: 'dv14-marker-change' });
    await watcher.waitForStatus('dv14-marker', (s) => s.customStatus === 'dv14-marker-change');

    expect(watcher.statusesOf('dv14-x')).toEqual([]);
  });
});
