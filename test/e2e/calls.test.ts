import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserStatusType } from '../../src/client/index.js';
import { expectCode, loginDevice, type TestDevice } from '../support/clients.js';
import { startDeployment, type Deployment, type TestApp } from '../support/deployment.js';

/**
 * SPEC §2–3: setSelfStatus and getUserStatus end to end through the SDK.
 * Every userID starts with `cl-`, unique per test.
 */

let deployment: Deployment;
/** Premium, every switch on, default limits. */
let premium: TestApp;
let basic: TestApp;
/** Premium with userStatusEnabled off. */
let switchOff: TestApp;
/** Three rate-limited calls per minute. */
let limited: TestApp;
/** Three rate-limited calls per 1.5 s, to watch the window slide. */
let shortWindow: TestApp;
/** maxQueryUsers 5. */
let smallQuery: TestApp;
const devices: TestDevice[] = [];

beforeAll(async () => {
  deployment = await startDeployment();
  [premium, basic, switchOff, limited, shortWindow, smallQuery] = await Promise.all([
    deployment.newApp(),
    deployment.newApp({ edition: 'basic' }),
    deployment.newApp({ userStatusEnabled: false }),
    deployment.newApp({ limits: { rateLimit: { count: 3, windowMs: 60_000 } } }),
    deployment.newApp({ limits: { rateLimit: { count: 3, windowMs: 1_500 } } }),
    deployment.newApp({ limits: { maxQueryUsers: 5 } }),
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

const self = async (device: TestDevice) => (await device.client.getUserStatus([device.userID]))[0]!;

const utf8Bytes = (text: string) => Buffer.byteLength(text, 'utf8');

describe('setSelfStatus', () => {
  it("calls - setSelfStatus notifies every device of the user, the caller's too", async () => {
    const laptop = await login(premium, 'cl-multi', { node: 0 });
    const phone = await login(premium, 'cl-multi', { node: 1 });
    await laptop.client.setSelfStatus({ customStatus: 'from the laptop' });
    for (const device of [laptop, phone]) {
      const pushed = await device.waitForStatus('cl-multi', (s) => s.customStatus === 'from the laptop');
      expect(pushed.statusType).toBe(UserStatusType.ONLINE);
    }
    await phone.client.setSelfStatus({ customStatus: 'from the phone' });
    for (const device of [laptop, phone]) await device.waitForStatus('cl-multi', (s) => s.customStatus === 'from the phone');
  });

  it('calls - setSelfStatus notifies every subscriber, on any node', async () => {
    const user = await login(premium, 'cl-sub-user', { node: 0 });
    const watchers = [await login(premium, 'cl-sub-w1', { node: 1 }), await login(premium, 'cl-sub-w2', { node: 2 })];
    for (const watcher of watchers) await watcher.client.subscribeUserStatus(['cl-sub-user']);
    await user.client.setSelfStatus({ customStatus: 'reading' });
    for (const watcher of watchers) {
      const pushed = await watcher.waitForStatus('cl-sub-user', (s) => s.customStatus === 'reading');
      expect(pushed).toMatchObject({ userID: 'cl-sub-user', statusType: UserStatusType.ONLINE, lastSeenAt: 0 });
    }
  });

  const clearings: Array<[string, string, { customStatus?: string | null } | undefined]> = [
    ["''", 'cl-clear-empty', { customStatus: '' }],
    ['null', 'cl-clear-null', { customStatus: null }],
    ['an omitted customStatus', 'cl-clear-omitted', {}],
    ['no argument at all', 'cl-clear-noarg', undefined],
  ];
  it.each(clearings)('calls - setSelfStatus with %s clears the custom status', async (_label, userID, args) => {
    const user = await login(premium, userID, { node: 0 });
    const watcher = await login(premium, `${userID}-w`, { node: 1 });
    await watcher.client.subscribeUserStatus([userID]);
    await user.client.setSelfStatus({ customStatus: 'busy' });
    const busy = await watcher.waitForStatus(userID, (s) => s.customStatus === 'busy');
    await user.client.setSelfStatus(args);
    const cleared = await watcher.waitForStatus(userID, (s) => s.version > busy.version);
    expect(cleared).toMatchObject({ customStatus: '', statusType: UserStatusType.ONLINE, version: busy.version + 1 });
    expect(await self(user)).toMatchObject({ customStatus: '', version: busy.version + 1 });
  });

  it('calls - a custom status of exactly 256 UTF-8 bytes is accepted and kept exactly', async () => {
    const status = '😀'.repeat(60) + 'é€ü中' + 'abcdef'; // 240 + 10 + 6 = 256 bytes, 136 UTF-16 units
    expect(utf8Bytes(status)).toBe(256);
    const user = await login(premium, 'cl-256', { node: 0 });
    const other = await login(premium, 'cl-256', { node: 1 });
    await user.client.setSelfStatus({ customStatus: status });
    const pushed = await other.waitForStatus('cl-256', (s) => s.customStatus !== '');
    expect(pushed.customStatus).toBe(status);
    expect((await self(user)).customStatus).toBe(status);
  });

  it('calls - a custom status over 256 UTF-8 bytes is refused with 6017 and changes nothing', async () => {
    const user = await login(premium, 'cl-257', { node: 1 });
    await user.client.setSelfStatus({ customStatus: 'before' });
    const before = await self(user);
    const over = '😀'.repeat(64) + 'a'; // 257 bytes, 129 UTF-16 units
    const wide = 'é'.repeat(129); // 258 bytes but only 129 characters: bytes count, not characters
    expect(utf8Bytes(over)).toBe(257);
    for (const text of [over, wide]) {
      const error = await expectCode(user.client.setSelfStatus({ customStatus: text }), 6017);
      expect(error.desc).toBeTruthy();
    }
    expect(await self(user)).toEqual(before);
    expect(before.customStatus).toBe('before');
  });

  it('calls - setSelfStatus has no rate limit', async () => {
    const user = await login(limited, 'cl-norate', { node: 2 });
    const start = await self(user);
    for (let i = 0; i < 30; i++) await user.client.setSelfStatus({ customStatus: `step ${i}` });
    await user.waitForStatus('cl-norate', (s) => s.customStatus === 'step 29');
    expect(await self(user)).toMatchObject({ customStatus: 'step 29', version: start.version + 30 });
  });

  it('calls - version grows by one with every change and only with a change', async () => {
    const user = await login(premium, 'cl-ver', { node: 0 });
    const watcher = await login(premium, 'cl-ver-w', { node: 1 });
    await watcher.client.subscribeUserStatus(['cl-ver']);
    const v0 = (await self(user)).version;
    expect(v0).toBeGreaterThan(0); // logging in was a change from "never logged in" (version 0)
    await user.client.setSelfStatus({ customStatus: 'one' });
    await user.client.setSelfStatus({ customStatus: 'one' }); // the same again: not a change
    await login(premium, 'cl-ver', { node: 2 }); // a second device: still ONLINE, not a change
    await user.client.setSelfStatus({ customStatus: 'two' });
    await user.client.setSelfStatus({});
    await watcher.waitForStatus('cl-ver', (s) => s.version >= v0 + 3);
    expect(watcher.statusesOf('cl-ver').map((s) => [s.version, s.customStatus])).toEqual([
      [v0 + 1, 'one'],
      [v0 + 2, 'two'],
      [v0 + 3, ''],
    ]);
    expect((await self(user)).version).toBe(v0 + 3);
  });

  it('calls - lastSeenAt is set when the user goes OFFLINE and is 0 again once back ONLINE', async () => {
    const user = await login(premium, 'cl-seen', { node: 0 });
    const watcher = await login(premium, 'cl-seen-w', { node: 1 });
    const [online] = await watcher.client.getUserStatus(['cl-seen']);
    expect(online).toMatchObject({ statusType: UserStatusType.ONLINE, lastSeenAt: 0 });
    await watcher.client.subscribeUserStatus(['cl-seen']);
    await user.client.setSelfStatus({ customStatus: 'about to drop' });
    const before = Date.now();
    user.client.close(); // a drop, not a logout
    const offline = await watcher.waitForStatus('cl-seen', (s) => s.statusType === UserStatusType.OFFLINE);
    const after = Date.now();
    expect(offline.lastSeenAt).toBeGreaterThanOrEqual(before);
    expect(offline.lastSeenAt).toBeLessThanOrEqual(after);
    expect(offline.customStatus).toBe('');
    const [readBack] = await watcher.client.getUserStatus(['cl-seen']);
    expect(readBack).toEqual(offline);

    await login(premium, 'cl-seen', { node: 2 });
    const back = await watcher.waitForStatus('cl-seen', (s) => s.statusType === UserStatusType.ONLINE && s.version > offline.version);
    expect(back.lastSeenAt).toBe(0);
    expect(back.version).toBe(offline.version + 1);
  });
});

describe('getUserStatus of oneself', () => {
  it("calls - getUserStatus([self]) is allowed on a 'basic' edition app", async () => {
    const user = await login(basic, 'cl-self-basic', { node: 0 });
    await user.client.setSelfStatus({ customStatus: 'basic but here' });
    expect(await self(user)).toMatchObject({
      userID: 'cl-self-basic',
      statusType: UserStatusType.ONLINE,
      customStatus: 'basic but here',
      lastSeenAt: 0,
    });
  });

  it('calls - getUserStatus([self]) is allowed with the user-status switch off', async () => {
    const user = await login(switchOff, 'cl-self-off', { node: 1 });
    expect(await self(user)).toMatchObject({ userID: 'cl-self-off', statusType: UserStatusType.ONLINE });
  });

  it('calls - getUserStatus([self]) is allowed beyond the rate window', async () => {
    const user = await login(limited, 'cl-self-rate', { node: 2 });
    for (let i = 0; i < 3; i++) await user.client.getUserStatus(['cl-self-rate-x']);
    await expectCode(user.client.getUserStatus(['cl-self-rate-x']), 7008);
    for (let i = 0; i < 10; i++) expect((await self(user)).statusType).toBe(UserStatusType.ONLINE);
    // and the self queries took nothing from the window either
    await expectCode(user.client.getUserStatus(['cl-self-rate-x']), 7008);
  });
});

describe('getUserStatus of others', () => {
  it("calls - getUserStatus(others) on a 'basic' edition app is refused with 7013", async () => {
    const user = await login(basic, 'cl-basic', { node: 0 });
    await expectCode(user.client.getUserStatus(['cl-basic-x']), 7013);
  });

  it('calls - getUserStatus with oneself among others is a query of others (7013 on basic)', async () => {
    const user = await login(basic, 'cl-basic-mixed', { node: 1 });
    await expectCode(user.client.getUserStatus(['cl-basic-mixed', 'cl-basic-x']), 7013);
  });

  it('calls - getUserStatus(others) with the user-status switch off is refused with 72001', async () => {
    const user = await login(switchOff, 'cl-off', { node: 2 });
    await expectCode(user.client.getUserStatus(['cl-off-x']), 72001);
  });

  it('calls - getUserStatus takes up to 500 ids by default and refuses 501 with 6017', async () => {
    const user = await login(premium, 'cl-max', { node: 0 });
    const ids = Array.from({ length: 501 }, (_, i) => `cl-max-${i}`);
    const statuses = await user.client.getUserStatus(ids.slice(0, 500));
    expect(statuses.map((s) => s.userID)).toEqual(ids.slice(0, 500));
    await expectCode(user.client.getUserStatus(ids), 6017);
  });

  it("calls - getUserStatus honours the app's maxQueryUsers", async () => {
    const user = await login(smallQuery, 'cl-small', { node: 1 });
    const ids = Array.from({ length: 6 }, (_, i) => `cl-small-${i}`);
    expect(await user.client.getUserStatus(ids.slice(0, 5))).toHaveLength(5);
    await expectCode(user.client.getUserStatus(ids), 6017);
  });

  it('calls - getUserStatus beyond the rate window is refused with 7008 and a retryAfterMs', async () => {
    const user = await login(limited, 'cl-rate', { node: 2 });
    for (let i = 0; i < 3; i++) await user.client.getUserStatus(['cl-rate-x']);
    const error = await expectCode(user.client.getUserStatus(['cl-rate-x']), 7008);
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(error.retryAfterMs).toBeLessThanOrEqual(60_000);
  });

  it('calls - a refused getUserStatus counts nothing: after retryAfterMs exactly one more call succeeds', async () => {
    const user = await login(shortWindow, 'cl-slide', { node: 0 });
    const query = () => user.client.getUserStatus(['cl-slide-x']);
    await query(); // t1
    await delay(500); // spread the window: t1, then t2 and t3 half a second later
    await query(); // t2
    await query(); // t3
    const refused = await expectCode(query(), 7008);
    const retryAt = Date.now() + refused.retryAfterMs!;
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(1_500);
    // More refused calls inside the window: none of them may count.
    for (let i = 0; i < 5; i++) await expectCode(query(), 7008);
    await delay(Math.max(0, retryAt - Date.now()) + 20);
    await query(); // t1 left the window: one slot is free
    const again = await expectCode(query(), 7008); // t2 and t3 are still in it
    expect(again.retryAfterMs).toBeGreaterThan(0);
    expect(again.retryAfterMs).toBeLessThanOrEqual(1_500);
  });

  it('calls - the rate window is per call kind', async () => {
    const user = await login(limited, 'cl-kind', { node: 1 });
    for (let i = 0; i < 3; i++) await user.client.getUserStatus(['cl-kind-x']);
    await expectCode(user.client.getUserStatus(['cl-kind-x']), 7008);
    await user.client.subscribeUserStatus(['cl-kind-x']);
    await user.client.unsubscribeUserStatus(['cl-kind-x']);
  });

  it('calls - the rate window is per user', async () => {
    const busy = await login(limited, 'cl-peruser-a', { node: 2 });
    const calm = await login(limited, 'cl-peruser-b', { node: 0 });
    for (let i = 0; i < 3; i++) await busy.client.getUserStatus(['cl-peruser-x']);
    await expectCode(busy.client.getUserStatus(['cl-peruser-x']), 7008);
    for (let i = 0; i < 3; i++) await calm.client.getUserStatus(['cl-peruser-x']);
  });

  it('calls - getUserStatus answers unknown users UNLOGINED, in the order asked', async () => {
    const known = await login(premium, 'cl-known', { node: 2 });
    const asker = await login(premium, 'cl-asker', { node: 0 });
    const statuses = await asker.client.getUserStatus(['cl-ghost-1', 'cl-known', 'cl-ghost-2']);
    expect(statuses.map((s) => s.userID)).toEqual(['cl-ghost-1', 'cl-known', 'cl-ghost-2']);
    for (const ghost of [statuses[0], statuses[2]]) {
      expect(ghost).toMatchObject({ statusType: UserStatusType.UNLOGINED, customStatus: '', version: 0, lastSeenAt: 0 });
    }
    expect(statuses[1]).toMatchObject({ statusType: UserStatusType.ONLINE, lastSeenAt: 0 });
    expect(statuses[1]!.version).toBe((await self(known)).version);
  });

  it('calls - the edition is checked before the parameters (docs/decisions.md refusal order)', async () => {
    const user = await login(basic, 'cl-order', { node: 1 });
    const tooMany = Array.from({ length: 501 }, (_, i) => `cl-order-${i}`);
    await expectCode(user.client.getUserStatus(tooMany), 7013);
    await expectCode(user.client.getUserStatus(['cl-order-x', 'not valid!']), 7013);
  });
});
