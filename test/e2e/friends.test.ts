import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserStatusType } from '../../src/client/index.js';
import { expectCode, loginDevice, type TestDevice } from '../support/clients.js';
import { startDeployment, type Deployment, type TestApp } from '../support/deployment.js';

/**
 * SPEC §3 "friends": with `friendStatusAutoNotify` on, every change of a user is pushed to all
 * its friends, using no subscription slot. Friendships are made with the admin API
 * (`POST /admin/apps/:id/friends`, mutual). Every userID starts with `fr-`, unique per test.
 *
 * The admin API answers before every node has necessarily applied a change (in a cluster, nodes
 * learn of it over the bus), so these tests wait for a change to take effect through what a
 * device can see, never by sleeping a fixed time:
 * - a new friendship: the friend repeats a change until the watcher sees one ({@link seenEventually});
 * - a removed friendship or a switched-off app: a positive barrier on the watcher's own node
 *   proves the change was applied there, then a marker on the same path proves nothing came.
 */

let deployment: Deployment;
const devices: TestDevice[] = [];

beforeAll(async () => {
  deployment = await startDeployment();
});

afterAll(async () => {
  for (const device of devices) device.client.close();
  await deployment?.stop();
});

const login = async (app: TestApp, userID: string, options: Parameters<typeof loginDevice>[3] = {}) => {
  const device = await loginDevice(deployment, app, userID, options);
  devices.push(device);
  return device;
};

const befriend = (app: TestApp, ...pairs: Array<[string, string]>) => deployment.admin.friends(app.sdkAppID, { add: pairs });

/**
 * `source` sets `${label} #n` again and again until `watcher` sees one of them, for at most
 * 10 s: the way to wait until a new friendship is in effect. Returns the status seen.
 */
const seenEventually = async (source: TestDevice, watcher: TestDevice, label: string) => {
  const deadline = Date.now() + 10_000;
  for (let n = 0; ; n++) {
    await source.client.setSelfStatus({ customStatus: `${label} #${n}` });
    try {
      await watcher.until(
        () => watcher.statusesOf(source.userID).some((s) => s.customStatus.startsWith(`${label} #`)),
        `${label} of ${source.userID}`,
        Math.min(250 * (n + 1), 1_000),
      );
      return watcher.statusesOf(source.userID).find((s) => s.customStatus.startsWith(`${label} #`))!;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
  }
};

/** `source` sets `status` and `watcher` waits for it. */
const changeSeen = async (source: TestDevice, watcher: TestDevice, status: string) => {
  await source.client.setSelfStatus({ customStatus: status });
  return watcher.waitForStatus(source.userID, (s) => s.customStatus === status, `custom status ${JSON.stringify(status)}`);
};

/** Retries `attempt` every 50 ms until it resolves, for at most 10 s. */
const eventually = async (attempt: () => Promise<unknown>) => {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await delay(50);
    }
  }
};

/**
 * Asserts `watcher` never got `source`'s custom status `unwanted`: subscribes to `source`
 * (a path set up after `unwanted` was announced), waits for a later change of the same user
 * and checks that `unwanted` did not come before it.
 */
const expectNotPushed = async (watcher: TestDevice, source: TestDevice, unwanted: string) => {
  await watcher.client.subscribeUserStatus([source.userID]);
  await changeSeen(source, watcher, `${unwanted} (marker)`);
  expect(watcher.statusesOf(source.userID).map((s) => s.customStatus)).not.toContain(unwanted);
};

describe('friends', () => {
  it('friends - a friend is pushed every change without subscribing', async () => {
    const app = await deployment.newApp();
    const watcher = await login(app, 'fr-every-w', { node: 0 });
    const friend = await login(app, 'fr-every-f', { node: 1, deviceId: 'fr-every-phone' });
    await befriend(app, ['fr-every-w', 'fr-every-f']);
    const first = await seenEventually(friend, watcher, 'hello');
    const second = await changeSeen(friend, watcher, 'second');
    expect(second.version).toBe(first.version + 1);
    const cleared = await changeSeen(friend, watcher, '');
    expect(cleared.version).toBe(second.version + 1);
    friend.client.close();
    const offline = await watcher.waitForStatus('fr-every-f', (s) => s.statusType === UserStatusType.OFFLINE);
    expect(offline.version).toBe(cleared.version + 1);
    const back = await login(app, 'fr-every-f', { node: 2, deviceId: 'fr-every-phone' });
    const online = await watcher.waitForStatus('fr-every-f', (s) => s.version === offline.version + 1);
    expect(online.statusType).toBe(UserStatusType.ONLINE);
    await back.client.logout();
    const unlogined = await watcher.waitForStatus('fr-every-f', (s) => s.version === online.version + 1);
    expect(unlogined.statusType).toBe(UserStatusType.UNLOGINED);
  });

  it('friends - friendship is mutual', async () => {
    const app = await deployment.newApp();
    const a = await login(app, 'fr-mutual-a', { node: 1 });
    const b = await login(app, 'fr-mutual-b', { node: 2 });
    await befriend(app, ['fr-mutual-a', 'fr-mutual-b']); // listed once, as [a, b]
    await seenEventually(a, b, 'a to b');
    await seenEventually(b, a, 'b to a');
  });

  it('friends - a friendship made before login applies once the user logs in', async () => {
    const app = await deployment.newApp();
    await befriend(app, ['fr-early-a', 'fr-early-b']);
    const a = await login(app, 'fr-early-a', { node: 2 });
    const b = await login(app, 'fr-early-b', { node: 0 });
    await seenEventually(b, a, 'known at login');
  });

  it('friends - friend pushes use no subscription slot', async () => {
    const app = await deployment.newApp({ limits: { subscriptionCap: 1 } });
    const watcher = await login(app, 'fr-slot-w', { node: 0 });
    const friend = await login(app, 'fr-slot-f', { node: 1 });
    const subscribed = await login(app, 'fr-slot-s', { node: 2 });
    await befriend(app, ['fr-slot-w', 'fr-slot-f']);
    await watcher.client.subscribeUserStatus(['fr-slot-s']); // the only slot
    await seenEventually(friend, watcher, 'friend');
    await changeSeen(subscribed, watcher, 'subscribed 1');
    await changeSeen(friend, watcher, 'friend 2');
    await changeSeen(subscribed, watcher, 'subscribed 2');
  });

  it("friends - auto-notify needs only the friend switch, not the 'premium' edition or userStatusEnabled", async () => {
    const app = await deployment.newApp({ edition: 'basic', userStatusEnabled: false, friendStatusAutoNotify: true });
    const watcher = await login(app, 'fr-basic-w', { node: 1 });
    const friend = await login(app, 'fr-basic-f', { node: 2 });
    await expectCode(watcher.client.subscribeUserStatus(['fr-basic-f']), 7013);
    await befriend(app, ['fr-basic-w', 'fr-basic-f']);
    await seenEventually(friend, watcher, 'basic friend');
  });

  it('friends - with friendStatusAutoNotify switched off, friends are no longer pushed', async () => {
    const app = await deployment.newApp();
    const watcher = await login(app, 'fr-switch-w', { node: 2 });
    const friend = await login(app, 'fr-switch-f', { node: 0 });
    await befriend(app, ['fr-switch-w', 'fr-switch-f']);
    await seenEventually(friend, watcher, 'while on');

    const settings = { secretKey: app.secretKey, edition: 'premium' as const, userStatusEnabled: true, friendStatusAutoNotify: true };
    // Barrier: switch the friend notification off together with userStatusEnabled, and wait until
    // the watcher's own actor refuses a query with 72001: its node now has the new settings.
    await deployment.admin.putApp(app.sdkAppID, { ...settings, friendStatusAutoNotify: false, userStatusEnabled: false });
    await eventually(() => expectCode(watcher.client.getUserStatus(['fr-switch-f']), 72001));
    await deployment.admin.putApp(app.sdkAppID, { ...settings, friendStatusAutoNotify: false });
    await eventually(() => watcher.client.getUserStatus(['fr-switch-f']));

    await friend.client.setSelfStatus({ customStatus: 'switched off' });
    await expectNotPushed(watcher, friend, 'switched off');
  });

  it('friends - removing a friendship stops its pushes', async () => {
    const app = await deployment.newApp();
    const watcher = await login(app, 'fr-rm-w', { node: 0 });
    const removed = await login(app, 'fr-rm-old', { node: 1 });
    const added = await login(app, 'fr-rm-new', { node: 2 });
    await befriend(app, ['fr-rm-w', 'fr-rm-old']);
    await seenEventually(removed, watcher, 'before removal');
    // One call removes a friend and adds another: once the new friend's pushes reach the watcher,
    // the watcher's friend list was re-read (both changes at once) on the node that serves it.
    await deployment.admin.friends(app.sdkAppID, { remove: [['fr-rm-old', 'fr-rm-w']], add: [['fr-rm-w', 'fr-rm-new']] });
    await seenEventually(added, watcher, 'barrier');
    await removed.client.setSelfStatus({ customStatus: 'after removal' });
    await expectNotPushed(watcher, removed, 'after removal');
  });
});
