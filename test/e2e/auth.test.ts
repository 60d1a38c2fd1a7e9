import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { genUserSig } from '../../src/auth/index.js';
import { PresenceClient, UserStatusType } from '../../src/client/index.js';
import { expectCode, loginDevice, TestDevice } from '../support/clients.js';
import { startDeployment, type Deployment, type TestApp } from '../support/deployment.js';

/**
 * SPEC §3–4: login errors through the SDK, same-device replacement (6208) and the admin kick
 * (70052). Every userID starts with `au-`, unique per test.
 */

let deployment: Deployment;
let app: TestApp;
const devices: TestDevice[] = [];
const clients: PresenceClient[] = [];

beforeAll(async () => {
  deployment = await startDeployment();
  app = await deployment.newApp();
});

afterAll(async () => {
  for (const device of devices) device.client.close();
  for (const client of clients) client.close();
  await deployment?.stop();
});

const login = async (userID: string, options: Parameters<typeof loginDevice>[3] = {}) => {
  const device = await loginDevice(deployment, app, userID, options);
  devices.push(device);
  return device;
};

/** A client of `sdkAppID` that is not logged in yet. */
const newClient = (sdkAppID: number, node = 0) => {
  const client = new PresenceClient({ url: deployment.url(node), sdkAppID, reconnect: { initialDelayMs: 50, maxDelayMs: 1_000 } });
  clients.push(client);
  return client;
};

/** Expects a login with `userSig` to fail with `code`, leaving the client logged out. */
const expectLoginRefused = async (client: PresenceClient, userID: string, userSig: string, code: number) => {
  const error = await expectCode(client.login(userID, userSig), code);
  expect(client.getLoginUser()).toBeUndefined();
  return error;
};

/** An sdkAppID no test creates. */
const unusedAppID = () => 1_300_000_000 + Math.floor(Math.random() * 90_000_000);

describe('login errors', () => {
  it('auth - login to an unknown sdkAppID is refused with 70020', async () => {
    const sdkAppID = unusedAppID();
    const userSig = genUserSig({ sdkAppID, secretKey: app.secretKey, userID: 'au-unknown-app' });
    await expectLoginRefused(newClient(sdkAppID, 1), 'au-unknown-app', userSig, 70020);
  });

  it('auth - login with a malformed UserSig is refused with 70003', async () => {
    for (const garbage of ['garbage', 'eJyrVkrLz1eyUkpKLFKqBQAVnwO7', app.sig('au-garbage').slice(0, -8)]) {
      await expectLoginRefused(newClient(app.sdkAppID, 2), 'au-garbage', garbage, 70003);
    }
  });

  it('auth - login with a UserSig signed with another secret is refused with 70003', async () => {
    const userSig = genUserSig({ sdkAppID: app.sdkAppID, secretKey: randomBytes(32).toString('hex'), userID: 'au-secret' });
    await expectLoginRefused(newClient(app.sdkAppID, 0), 'au-secret', userSig, 70003);
  });

  it('auth - login with a UserSig issued for another userID is refused with 70013', async () => {
    await expectLoginRefused(newClient(app.sdkAppID, 1), 'au-me', app.sig('au-someone-else'), 70013);
  });

  it('auth - login with a UserSig issued for another sdkAppID with the same secret is refused with 70014', async () => {
    const twinID = unusedAppID();
    await deployment.admin.putApp(twinID, {
      secretKey: app.secretKey,
      edition: 'premium',
      userStatusEnabled: true,
      friendStatusAutoNotify: true,
    });
    const forTwin = genUserSig({ sdkAppID: twinID, secretKey: app.secretKey, userID: 'au-twin' });
    await expectLoginRefused(newClient(app.sdkAppID, 2), 'au-twin', forTwin, 70014);
    await expectLoginRefused(newClient(twinID, 0), 'au-twin', app.sig('au-twin'), 70014);
    // each UserSig works on its own app
    const twin = newClient(twinID, 1);
    await twin.login('au-twin', forTwin);
    expect(twin.getLoginUser()).toBe('au-twin');
  });

  it('auth - login with an invalid userID, deviceId or platform is refused with 6017', async () => {
    const tooLong = 'au-' + 'x'.repeat(30); // 33 bytes
    for (const userID of [tooLong, 'au bad space', 'au-ü']) {
      await expectLoginRefused(newClient(app.sdkAppID, 0), userID, app.sig(userID), 6017);
    }
    const client = newClient(app.sdkAppID, 1);
    await expectCode(client.login('au-params', app.sig('au-params'), { deviceId: 'has space' }), 6017);
    await expectCode(client.login('au-params', app.sig('au-params'), { platform: 'amiga' as never }), 6017);
    expect(client.getLoginUser()).toBeUndefined();
  });

  it('auth - login with an expired UserSig is refused with 70001', async () => {
    const expired = app.sig('au-expired', { now: Date.now() - 10_000, expire: 1 });
    await expectLoginRefused(newClient(app.sdkAppID, 0), 'au-expired', expired, 70001);
    const [status] = await deployment.admin.status(app.sdkAppID, ['au-expired']);
    expect(status!.statusType).toBe(UserStatusType.UNLOGINED);
  });
});

describe('same device', () => {
  it('auth - a second login with the same deviceId replaces the first, which is kicked with 6208 and stays out', async () => {
    const first = await login('au-same', { node: 0, deviceId: 'au-same-phone' });
    const watcher = await login('au-same-w', { node: 2 });
    await watcher.client.subscribeUserStatus(['au-same']);
    const [before] = await deployment.admin.status(app.sdkAppID, ['au-same']);

    const second = await login('au-same', { node: 1, deviceId: 'au-same-phone' });
    const kick = await first.waitForKick();
    expect(kick.code).toBe(6208);
    expect(first.kicks).toHaveLength(1);
    expect(first.client.getLoginUser()).toBeUndefined(); // logged out locally: no reconnect follows
    await first.waitForState('disconnected');
    expect(first.states.slice(first.states.lastIndexOf('disconnected'))).not.toContain('connecting');

    // The user stayed ONLINE throughout, and the new connection works.
    await second.client.setSelfStatus({ customStatus: 'replaced' });
    const pushed = await watcher.waitForStatus('au-same', (s) => s.customStatus === 'replaced');
    expect(pushed.statusType).toBe(UserStatusType.ONLINE);
    expect(watcher.statusesOf('au-same').map((s) => s.statusType)).toEqual([UserStatusType.ONLINE]);
    expect(pushed.version).toBe(before!.version + 1); // the replacement itself was not a change
    expect(second.kicks).toHaveLength(0);
    expect(first.states.slice(first.states.lastIndexOf('disconnected'))).not.toContain('connecting');
  });
});

describe('admin kick', () => {
  it('auth - an admin kick kicks every device of the user with 70052 and makes the user UNLOGINED', async () => {
    const laptop = await login('au-kick', { node: 0 });
    const phone = await login('au-kick', { node: 1 });
    const watcher = await login('au-kick-w', { node: 2 });
    await watcher.client.subscribeUserStatus(['au-kick']);
    await deployment.admin.kick(app.sdkAppID, 'au-kick');
    for (const device of [laptop, phone]) {
      expect((await device.waitForKick()).code).toBe(70052);
      expect(device.client.getLoginUser()).toBeUndefined();
    }
    const pushed = await watcher.waitForStatus('au-kick', (s) => s.statusType !== UserStatusType.ONLINE);
    expect(pushed.statusType).toBe(UserStatusType.UNLOGINED);
    const [status] = await deployment.admin.status(app.sdkAppID, ['au-kick']);
    expect(status).toMatchObject({ statusType: UserStatusType.UNLOGINED, customStatus: '' });
    expect(status!.lastSeenAt).toBeGreaterThan(0);
  });

  it('auth - after an admin kick a UserSig issued before it is refused with 70052', async () => {
    const oldSig = app.sig('au-revoked');
    const device = await login('au-revoked', { node: 1 });
    await deployment.admin.kick(app.sdkAppID, 'au-revoked');
    await device.waitForKick();
    await expectLoginRefused(newClient(app.sdkAppID, 2), 'au-revoked', oldSig, 70052);
    const [status] = await deployment.admin.status(app.sdkAppID, ['au-revoked']);
    expect(status!.statusType).toBe(UserStatusType.UNLOGINED);
  });

  it('auth - after an admin kick a UserSig issued a second later logs in', async () => {
    const device = await login('au-fresh', { node: 2 });
    await deployment.admin.kick(app.sdkAppID, 'au-fresh');
    await device.waitForKick();
    const client = newClient(app.sdkAppID, 0);
    const again = new TestDevice(client, 'au-fresh');
    await client.login('au-fresh', app.sig('au-fresh', { now: Date.now() + 1_000 }));
    expect(client.getLoginUser()).toBe('au-fresh');
    const [status] = await deployment.admin.status(app.sdkAppID, ['au-fresh']);
    expect(status!.statusType).toBe(UserStatusType.ONLINE);
    await client.setSelfStatus({ customStatus: 'back' });
    await again.waitForStatus('au-fresh', (s) => s.customStatus === 'back');
  });

  it('auth - an admin kick of a user who is not logged in is harmless and still revokes', async () => {
    const oldSig = app.sig('au-absent');
    await deployment.admin.kick(app.sdkAppID, 'au-absent');
    await expectLoginRefused(newClient(app.sdkAppID, 1), 'au-absent', oldSig, 70052);
    const client = newClient(app.sdkAppID, 2);
    await client.login('au-absent', app.sig('au-absent', { now: Date.now() + 1_000 }));
    expect(client.getLoginUser()).toBe('au-absent');
  });
});
