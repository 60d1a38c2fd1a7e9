import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserStatusType } from '../../src/client/index.js';
import { expectCode, loginDevice, type TestDevice } from '../support/clients.js';
import { startDeployment, type Deployment, type TestApp } from '../support/deployment.js';

/**
 * SPEC §3: subscribeUserStatus / unsubscribeUserStatus, the subscription cap and retention.
 * Every userID starts with `sb-`, unique per test.
 *
 * "Not pushed" is asserted with a marker on the same path: after the unwanted change `x` of a
 * target, the watcher subscribes to that target again and the target makes a change `y`. Changes
 * of one user are announced in order on that user's subject, and the re-subscription is set up
 * only after `x` was announced (its setSelfStatus had resolved), so once `y` arrives, `x` would
 * have arrived before it had it been pushed.
 */

let deployment: Deployment;
let premium: TestApp;
let basic: TestApp;
let switchOff: TestApp;
/** subscriptionCap 3. */
let capped: TestApp;
/** Three rate-limited calls per minute. */
let limited: TestApp;
/** Subscriptions retained 60 s after the user leaves. */
let longRetention: TestApp;
/** Subscriptions retained 500 ms after the user leaves. */
let shortRetention: TestApp;
const devices: TestDevice[] = [];

beforeAll(async () => {
  deployment = await startDeployment();
  [premium, basic, switchOff, capped, limited, longRetention, shortRetention] = await Promise.all([
    deployment.newApp(),
    deployment.newApp({ edition: 'basic' }),
    deployment.newApp({ userStatusEnabled: false }),
    deployment.newApp({ limits: { subscriptionCap: 3 } }),
    deployment.newApp({ limits: { rateLimit: { count: 3, windowMs: 60_000 } } }),
    deployment.newApp({ limits: { subscriptionRetentionMs: 60_000 } }),
    deployment.newApp({ limits: { subscriptionRetentionMs: 500 } }),
  ]);
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

/** Logs in `names` (prefixed) spread over the nodes, starting at node `first`. */
const loginAll = (app: TestApp, names: string[], first = 0) =>
  Promise.all(names.map((name, i) => login(app, name, { node: first + i })));

/** `target` sets `status` and `watcher` waits for it. */
const changeSeen = async (target: TestDevice, watcher: TestDevice, status: string) => {
  await target.client.setSelfStatus({ customStatus: status });
  return watcher.waitForStatus(target.userID, (s) => s.customStatus === status, `custom status ${JSON.stringify(status)}`);
};

/**
 * Asserts that `watcher` never got `target`'s custom status `unwanted`, which `target` set
 * after the watcher stopped following it: re-subscribes, waits for a later change, then checks.
 */
const expectNotPushed = async (watcher: TestDevice, target: TestDevice, unwanted: string) => {
  await watcher.client.subscribeUserStatus([target.userID]);
  await changeSeen(target, watcher, `${unwanted} (marker)`);
  expect(watcher.statusesOf(target.userID).map((s) => s.customStatus)).not.toContain(unwanted);
};

describe('subscribe: gating and parameters', () => {
  it("subscriptions - subscribeUserStatus on a 'basic' edition app is refused with 7013", async () => {
    const user = await login(basic, 'sb-basic', { node: 0 });
    await expectCode(user.client.subscribeUserStatus(['sb-basic-x']), 7013);
  });

  it('subscriptions - subscribeUserStatus with the user-status switch off is refused with 72001', async () => {
    const user = await login(switchOff, 'sb-off', { node: 1 });
    await expectCode(user.client.subscribeUserStatus(['sb-off-x']), 72001);
  });

  it('subscriptions - subscribeUserStatus takes up to 100 ids and refuses 101 with 6017', async () => {
    const user = await login(premium, 'sb-max', { node: 2 });
    const ids = Array.from({ length: 101 }, (_, i) => `sb-max-${i}`);
    await expectCode(user.client.subscribeUserStatus(ids), 6017);
    await user.client.subscribeUserStatus(ids.slice(0, 100));
  });

  it('subscriptions - subscribing to oneself is refused with 6017', async () => {
    const user = await login(premium, 'sb-self', { node: 0 });
    await expectCode(user.client.subscribeUserStatus(['sb-self']), 6017);
  });

  it('subscriptions - a refused subscribe subscribes none of its ids', async () => {
    const [watcher, target] = await loginAll(premium, ['sb-mixed-w', 'sb-mixed-t'], 1);
    await expectCode(watcher!.client.subscribeUserStatus(['sb-mixed-t', 'sb-mixed-w']), 6017); // self among them
    await expectCode(watcher!.client.subscribeUserStatus(['sb-mixed-t', 'not a valid id']), 6017);
    await target!.client.setSelfStatus({ customStatus: 'unwanted' });
    await expectNotPushed(watcher!, target!, 'unwanted');
  });

  it('subscriptions - subscribeUserStatus beyond the rate window is refused with 7008 and a retryAfterMs', async () => {
    const user = await login(limited, 'sb-rate', { node: 2 });
    for (let i = 0; i < 3; i++) await user.client.subscribeUserStatus([`sb-rate-${i}`]);
    const error = await expectCode(user.client.subscribeUserStatus(['sb-rate-3']), 7008);
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(error.retryAfterMs).toBeLessThanOrEqual(60_000);
  });

  it('subscriptions - the edition is checked before the parameters (docs/decisions.md refusal order)', async () => {
    const user = await login(basic, 'sb-order', { node: 0 });
    await expectCode(user.client.subscribeUserStatus(['sb-order-x', 'not a valid id']), 7013);
    await expectCode(user.client.subscribeUserStatus(Array.from({ length: 101 }, (_, i) => `sb-order-${i}`)), 7013);
  });
});

describe('pushes', () => {
  it('subscriptions - a subscriber is pushed ONLINE, custom status, OFFLINE and UNLOGINED changes', async () => {
    const watcher = await login(premium, 'sb-life-w', { node: 0 });
    await watcher.client.subscribeUserStatus(['sb-life']); // not logged in yet
    const first = await login(premium, 'sb-life', { node: 1, deviceId: 'sb-life-phone' });
    const online = await watcher.waitForStatus('sb-life', (s) => s.statusType === UserStatusType.ONLINE);
    expect(online).toMatchObject({ customStatus: '', lastSeenAt: 0 });

    const custom = await changeSeen(first, watcher, 'at lunch');
    expect(custom).toMatchObject({ statusType: UserStatusType.ONLINE, version: online.version + 1 });

    first.client.close(); // dropped: OFFLINE, and the custom status is cleared in the same change
    const offline = await watcher.waitForStatus('sb-life', (s) => s.statusType === UserStatusType.OFFLINE);
    expect(offline).toMatchObject({ customStatus: '', version: custom.version + 1 });
    expect(offline.lastSeenAt).toBeGreaterThan(0);

    // The same device again, so that its logout leaves no dropped device behind (docs/decisions.md).
    const second = await login(premium, 'sb-life', { node: 2, deviceId: 'sb-life-phone' });
    const back = await watcher.waitForStatus('sb-life', (s) => s.version === offline.version + 1);
    expect(back).toMatchObject({ statusType: UserStatusType.ONLINE, lastSeenAt: 0 });

    await second.client.logout(); // the only device logged out: UNLOGINED
    const unlogined = await watcher.waitForStatus('sb-life', (s) => s.statusType === UserStatusType.UNLOGINED);
    expect(unlogined).toMatchObject({ customStatus: '', version: back.version + 1 });
    expect(unlogined.lastSeenAt).toBeGreaterThan(0);
  });

  it('subscriptions - every device of the subscriber is pushed', async () => {
    const laptop = await login(premium, 'sb-devs-w', { node: 0 });
    const phone = await login(premium, 'sb-devs-w', { node: 1 });
    const target = await login(premium, 'sb-devs-t', { node: 2 });
    await laptop.client.subscribeUserStatus(['sb-devs-t']);
    await changeSeen(target, laptop, 'hello devices');
    await phone.waitForStatus('sb-devs-t', (s) => s.customStatus === 'hello devices');
  });
});

describe('subscription cap', () => {
  it('subscriptions - beyond subscriptionCap the subscription made longest ago is evicted', async () => {
    const [w, a, b, c, d] = await loginAll(capped, ['sb-cap-w', 'sb-cap-a', 'sb-cap-b', 'sb-cap-c', 'sb-cap-d']);
    for (const target of [a, b, c, d]) await w!.client.subscribeUserStatus([target!.userID]);
    // a was evicted by d: its changes are no longer pushed; b, c and d still are
    await a!.client.setSelfStatus({ customStatus: 'evicted a' });
    for (const target of [b, c, d]) await changeSeen(target!, w!, `still ${target!.userID}`);
    await expectNotPushed(w!, a!, 'evicted a');
  });

  it('subscriptions - subscribing again to a held user refreshes its age', async () => {
    const [w, a, b, c, d] = await loginAll(capped, ['sb-age-w', 'sb-age-a', 'sb-age-b', 'sb-age-c', 'sb-age-d'], 1);
    for (const target of [a, b, c]) await w!.client.subscribeUserStatus([target!.userID]);
    await w!.client.subscribeUserStatus([a!.userID]); // a is now the youngest
    await w!.client.subscribeUserStatus([d!.userID]); // so b, the oldest, goes
    await b!.client.setSelfStatus({ customStatus: 'evicted b' });
    for (const target of [a, c, d]) await changeSeen(target!, w!, `still ${target!.userID}`);
    await expectNotPushed(w!, b!, 'evicted b');
  });
});

describe('unsubscribe', () => {
  it('subscriptions - unsubscribeUserStatus stops the pushes of those users only', async () => {
    const [w, a, b] = await loginAll(premium, ['sb-unsub-w', 'sb-unsub-a', 'sb-unsub-b'], 2);
    await w!.client.subscribeUserStatus(['sb-unsub-a', 'sb-unsub-b']);
    await changeSeen(a!, w!, 'a before');
    await w!.client.unsubscribeUserStatus(['sb-unsub-a']);
    await a!.client.setSelfStatus({ customStatus: 'a after' });
    await changeSeen(b!, w!, 'b after'); // b is still subscribed
    await expectNotPushed(w!, a!, 'a after');
  });

  const clearAll: Array<[string, string, string[] | undefined]> = [
    ['[]', 'sb-clr-e', []],
    ['no list', 'sb-clr-o', undefined],
  ];
  it.each(clearAll)('subscriptions - unsubscribeUserStatus with %s clears every subscription', async (_label, prefix, list) => {
    const [w, a, b] = await loginAll(premium, [`${prefix}-w`, `${prefix}-a`, `${prefix}-b`]);
    await w!.client.subscribeUserStatus([a!.userID, b!.userID]);
    await changeSeen(a!, w!, 'a before');
    await changeSeen(b!, w!, 'b before');
    await w!.client.unsubscribeUserStatus(list);
    await a!.client.setSelfStatus({ customStatus: 'a after' });
    await b!.client.setSelfStatus({ customStatus: 'b after' });
    await expectNotPushed(w!, a!, 'a after');
    await expectNotPushed(w!, b!, 'b after');
  });

  it("subscriptions - unsubscribeUserStatus on a 'basic' edition app is refused with 7013", async () => {
    const user = await login(basic, 'sb-unsub-basic', { node: 1 });
    await expectCode(user.client.unsubscribeUserStatus(['sb-unsub-basic-x']), 7013);
    await expectCode(user.client.unsubscribeUserStatus(), 7013);
  });

  it('subscriptions - unsubscribeUserStatus with the user-status switch off is refused with 72001', async () => {
    const user = await login(switchOff, 'sb-unsub-off', { node: 2 });
    await expectCode(user.client.unsubscribeUserStatus(['sb-unsub-off-x']), 72001);
    await expectCode(user.client.unsubscribeUserStatus([]), 72001);
  });

  it('subscriptions - unsubscribeUserStatus takes up to 100 ids and refuses 101 with 6017', async () => {
    const user = await login(premium, 'sb-unsub-max', { node: 0 });
    const ids = Array.from({ length: 101 }, (_, i) => `sb-unsub-max-${i}`);
    await expectCode(user.client.unsubscribeUserStatus(ids), 6017);
    await user.client.unsubscribeUserStatus(ids.slice(0, 100));
  });

  it('subscriptions - unsubscribeUserStatus beyond the rate window is refused with 7008 and a retryAfterMs', async () => {
    const user = await login(limited, 'sb-unsub-rate', { node: 1 });
    for (let i = 0; i < 3; i++) await user.client.unsubscribeUserStatus([`sb-unsub-rate-${i}`]);
    const error = await expectCode(user.client.unsubscribeUserStatus(['sb-unsub-rate-3']), 7008);
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(error.retryAfterMs).toBeLessThanOrEqual(60_000);
    await expectCode(user.client.unsubscribeUserStatus(), 7008); // clearing all is the same call kind
  });
});

describe('retention', () => {
  const leaving: Array<[string, string, UserStatusType, (device: TestDevice) => Promise<void>]> = [
    ['OFFLINE (dropped)', 'sb-keep-drop', UserStatusType.OFFLINE, async (d) => d.client.close()],
    ['UNLOGINED (logged out)', 'sb-keep-out', UserStatusType.UNLOGINED, (d) => d.client.logout()],
  ];
  it.each(leaving)(
    'subscriptions - a user back ONLINE within subscriptionRetentionMs after going %s keeps its subscriptions',
    async (_label, prefix, leftAs, leave) => {
      const [w, target, observer] = await loginAll(longRetention, [`${prefix}-w`, `${prefix}-t`, `${prefix}-o`]);
      await w!.client.subscribeUserStatus([target!.userID]);
      await observer!.client.subscribeUserStatus([w!.userID]);
      await leave(w!);
      await observer!.waitForStatus(w!.userID, (s) => s.statusType === leftAs);
      const back = await login(longRetention, w!.userID, { node: 2 });
      await changeSeen(target!, back, 'pushed without subscribing again');
    },
  );

  it('subscriptions - subscriptions are cleared subscriptionRetentionMs after the user goes OFFLINE', async () => {
    const [w, target, observer] = await loginAll(shortRetention, ['sb-drop-w', 'sb-drop-t', 'sb-drop-o']);
    await w!.client.subscribeUserStatus([target!.userID]);
    await observer!.client.subscribeUserStatus([w!.userID]);
    w!.client.close();
    const offline = await observer!.waitForStatus(w!.userID, (s) => s.statusType === UserStatusType.OFFLINE);
    // The retention is a time rule: let it run out (500 ms) with a margin.
    await delay(Math.max(0, offline.lastSeenAt + 500 + 500 - Date.now()));
    const back = await login(shortRetention, w!.userID, { node: 1 });
    await target!.client.setSelfStatus({ customStatus: 'after retention' });
    await expectNotPushed(back, target!, 'after retention');
  });
});
