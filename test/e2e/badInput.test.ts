import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserStatusType } from '../../src/client/index.js';
import { loginDevice, type TestDevice } from '../support/clients.js';
import { startDeployment, type Deployment, type TestApp } from '../support/deployment.js';
import { RawSocket, type RawResponse } from '../support/rawSocket.js';

/**
 * Protocol-level refusals (docs/protocol.md "Validation"): every bad frame gets its SPEC code, the
 * connection and the node keep serving, and nothing is half-applied.
 */

const packr = new Packr({ useRecords: false });
const ILLEGAL_IDS = ['', 'a b', 'x'.repeat(33), 'ü', 'a/b'];

let deployment: Deployment;
let app: TestApp;
/** A subscription cap of 2, to see what a refused subscribe left behind. */
let capApp: TestApp;
/** Gated calls refused before their parameters are looked at (docs/decisions.md "Order of refusals"). */
let basicApp: TestApp;
let switchedOffApp: TestApp;
const sockets: RawSocket[] = [];
const devices: TestDevice[] = [];

beforeAll(async () => {
  deployment = await startDeployment();
  [app, capApp, basicApp, switchedOffApp] = await Promise.all([
    deployment.newApp(),
    deployment.newApp({ limits: { subscriptionCap: 2 } }),
    deployment.newApp({ edition: 'basic' }),
    deployment.newApp({ userStatusEnabled: false }),
  ]);
});

afterAll(async () => {
  for (const socket of sockets) socket.close();
  for (const device of devices) device.client.close();
  await deployment?.stop();
});

const open = async (node = 0): Promise<RawSocket> => {
  const socket = await RawSocket.open(deployment.url(node));
  sockets.push(socket);
  return socket;
};

const loginArgs = (userID: string, testApp = app, extra: Record<string, unknown> = {}) => ({
  sdkAppID: testApp.sdkAppID,
  userID,
  userSig: testApp.sig(userID),
  ...extra,
});

/** A raw socket logged in as `userID`. */
const openLoggedIn = async (userID: string, node = 0, testApp = app): Promise<RawSocket> => {
  const socket = await open(node);
  const answer = await socket.request('login', loginArgs(userID, testApp));
  expect(answer, `login of ${userID}`).toMatchObject({ ok: true });
  return socket;
};

const expectRefused = (answer: RawResponse, code = 6017): void => {
  expect(answer).toMatchObject({ t: 'res', ok: false, error: { code } });
};

/** The user's own status, read over `socket` (a free call): proof the connection still serves. */
const selfStatus = async (socket: RawSocket, userID: string) => {
  const answer = await socket.request('getUserStatus', { userIDList: [userID] });
  expect(answer).toMatchObject({ ok: true });
  return (answer.result!.statuses as Array<{ statusType: number; customStatus: string; version: number }>)[0]!;
};

describe('badInput', () => {
  it('badInput - bytes that are not msgpack are refused with err 6017', async () => {
    const socket = await open(0);
    for (const bytes of [[0x82, 0xa1, 0x74], [0xd9], [0xdc, 0xff], [0x81, 0xa1, 0x74, 0xa2, 0x68, 0x62, 0xc1]]) {
      socket.sendBytes(Uint8Array.from(bytes));
      expect(await socket.nextError(), `bytes ${bytes}`).toMatchObject({ code: 6017 });
    }
    expect(await socket.request('login', loginArgs('bi1-alice'))).toMatchObject({ ok: true });
  });

  it('badInput - a text frame is refused with err 6017', async () => {
    const socket = await open(1);
    socket.sendText(JSON.stringify({ t: 'req', id: 1, op: 'login', args: loginArgs('bi2-alice') }));
    expect(await socket.nextError()).toMatchObject({ code: 6017 });
    expect(socket.frames.filter((f) => f.t === 'res')).toEqual([]);
    await socket.heartbeat();
  });

  it('badInput - a frame over 64 KiB is refused with err 6017 and the connection stays usable', async () => {
    const socket = await openLoggedIn('bi3-alice', 2);
    expect(await socket.request('setSelfStatus', { customStatus: 'before' })).toMatchObject({ ok: true });
    const before = await selfStatus(socket, 'bi3-alice');

    const bigId = socket.sendRequest('setSelfStatus', { customStatus: 'x'.repeat(70_000) });
    expect(await socket.nextError()).toMatchObject({ code: 6017 });

    expect(await selfStatus(socket, 'bi3-alice')).toEqual(before);
    expect(socket.frames.some((f) => f.t === 'res' && f.id === bigId)).toBe(false);
  });

  it('badInput - a frame of exactly 64 KiB is still read and answered', async () => {
    const socket = await openLoggedIn('bi26-alice', 0);
    const frameOf = (pad: string) => packr.pack({ t: 'req', id: 7, op: 'setSelfStatus', args: { customStatus: 'at the limit' }, pad });
    const bytes = frameOf('p'.repeat(65_536 - frameOf('').length - 2));
    expect(bytes.length).toBe(65_536);

    socket.sendBytes(bytes);

    expect(await socket.response(7)).toMatchObject({ ok: true, result: { status: { customStatus: 'at the limit' } } });
  });

  it('badInput - a frame of exactly 1 MiB is refused with err 6017, not closed', async () => {
    const socket = await open(1);
    socket.sendBytes(new Uint8Array(1024 * 1024));
    expect(await socket.nextError()).toMatchObject({ code: 6017 });
    await socket.heartbeat();
  });

  it('badInput - a frame over 1 MiB closes the socket with 1009', async () => {
    const socket = await open(0);
    socket.sendBytes(new Uint8Array(1024 * 1024 + 16));
    expect((await socket.closed()).code).toBe(1009);
    await (await open(0)).heartbeat();
  });

  it('badInput - a frame that is not a map is refused with err 6017', async () => {
    const socket = await open(1);
    for (const value of [[1, 2], ['req', 1, 'login'], 42, 'req', null, true]) {
      socket.send(value);
      expect(await socket.nextError(), JSON.stringify(value)).toMatchObject({ code: 6017 });
    }
    await socket.heartbeat();
  });

  it('badInput - a frame of unknown type is refused with err 6017', async () => {
    const socket = await openLoggedIn('bi6-alice', 2);
    for (const frame of [{ t: 'bogus', id: 1 }, { t: 7 }, { id: 1, op: 'logout' }, { t: 'res', id: 1, ok: true }]) {
      socket.send(frame);
      expect(await socket.nextError(), JSON.stringify(frame)).toMatchObject({ code: 6017 });
    }
    expect((await selfStatus(socket, 'bi6-alice')).statusType).toBe(UserStatusType.ONLINE);
  });

  it('badInput - a request without a positive integer id is refused with err 6017', async () => {
    const socket = await openLoggedIn('bi7-alice', 0);
    for (const id of [undefined, 0, -3, 1.5, '7', null]) {
      socket.send({ t: 'req', ...(id === undefined ? {} : { id }), op: 'setSelfStatus', args: { customStatus: 'no id' } });
      expect(await socket.nextError(), `id ${String(id)}`).toMatchObject({ code: 6017 });
    }
    expect(await selfStatus(socket, 'bi7-alice')).toMatchObject({ customStatus: '' });
  });

  it('badInput - an unknown op is answered by its id with 6017', async () => {
    const socket = await openLoggedIn('bi8-alice', 1);
    socket.send({ t: 'req', id: 4242, op: 'deleteEverything', args: {} });
    expect(await socket.response(4242)).toMatchObject({ id: 4242, ok: false, error: { code: 6017 } });
    socket.send({ t: 'req', id: 4243 });
    expect(await socket.response(4243)).toMatchObject({ id: 4243, ok: false, error: { code: 6017 } });
    expect((await selfStatus(socket, 'bi8-alice')).statusType).toBe(UserStatusType.ONLINE);
  });

  it('badInput - a userIDList that is not an array is refused with 6017', async () => {
    const socket = await openLoggedIn('bi9-alice', 2);
    expectRefused(await socket.request('getUserStatus', { userIDList: 'bi9-bob' }));
    expectRefused(await socket.request('getUserStatus', 5));
    expectRefused(await socket.request('getUserStatus', { userIDList: { 0: 'bi9-bob' } }));
    expectRefused(await socket.request('subscribeUserStatus', { userIDList: 'bi9-bob' }));
    expectRefused(await socket.request('unsubscribeUserStatus', { userIDList: 'bi9-bob' }));
  });

  it('badInput - a customStatus that is not a string is refused with 6017 and changes nothing', async () => {
    const socket = await openLoggedIn('bi10-alice', 0);
    expect(await socket.request('setSelfStatus', { customStatus: 'kept' })).toMatchObject({ ok: true });
    const before = await selfStatus(socket, 'bi10-alice');

    for (const customStatus of [42, ['a'], { text: 'a' }, true]) {
      expectRefused(await socket.request('setSelfStatus', { customStatus }));
    }

    expect(await selfStatus(socket, 'bi10-alice')).toEqual(before);
  });

  it('badInput - a login with sdkAppID as a string is refused with 6017', async () => {
    const socket = await open(1);
    expectRefused(await socket.request('login', { ...loginArgs('bi11-alice'), sdkAppID: String(app.sdkAppID) }));
    expectRefused(await socket.request('getUserStatus', { userIDList: ['bi11-alice'] }), 6014);
    expect(await socket.request('login', loginArgs('bi11-alice'))).toMatchObject({ ok: true });
  });

  it('badInput - 10 000 ids in one getUserStatus are refused with 6017 at once', async () => {
    const socket = await openLoggedIn('bi12-alice', 2);
    const userIDList = Array.from({ length: 10_000 }, (_, i) => `u${i}`);

    const startedAt = Date.now();
    expectRefused(await socket.request('getUserStatus', { userIDList }));
    expect(Date.now() - startedAt).toBeLessThan(1_000);
    expectRefused(await socket.request('subscribeUserStatus', { userIDList }));
  });

  it('badInput - illegal userIDs in login are refused with 6017 and leave the socket logged out', async () => {
    const socket = await open(0);
    for (const userID of ILLEGAL_IDS) {
      expectRefused(await socket.request('login', { sdkAppID: app.sdkAppID, userID, userSig: app.sig('bi13-alice') }));
    }
    expectRefused(await socket.request('getUserStatus', { userIDList: ['bi13-alice'] }), 6014);
  });

  it('badInput - illegal userIDs in a list refuse the whole call with 6017', async () => {
    const socket = await openLoggedIn('bi14-alice', 1);
    for (const bad of ILLEGAL_IDS) {
      expectRefused(await socket.request('getUserStatus', { userIDList: ['bi14-bob', bad] }));
      expectRefused(await socket.request('subscribeUserStatus', { userIDList: ['bi14-bob', bad] }));
      expectRefused(await socket.request('unsubscribeUserStatus', { userIDList: [bad] }));
    }
    expect(await socket.request('getUserStatus', { userIDList: ['bi14-bob'] })).toMatchObject({ ok: true });
  });

  it('badInput - userIDs of 32 bytes and of every allowed character are accepted', async () => {
    const longest = 'x'.repeat(32);
    const socket = await openLoggedIn(longest, 2);
    const answer = await socket.request('getUserStatus', { userIDList: [longest, 'A-z_0.9@bi15'] });
    expect(answer).toMatchObject({ ok: true });
    expect((answer.result!.statuses as Array<{ userID: string }>).map((s) => s.userID)).toEqual([longest, 'A-z_0.9@bi15']);
  });

  it('badInput - a subscribe with one illegal id subscribes none of the valid ones', async () => {
    const socket = await openLoggedIn('bi16-watcher', 0, capApp);

    expectRefused(await socket.request('subscribeUserStatus', { userIDList: ['bi16-a', 'bi16-b', 'a b'] }));

    // With a cap of 2, had bi16-a and bi16-b been subscribed, these two would evict them.
    expect(await socket.request('subscribeUserStatus', { userIDList: ['bi16-c', 'bi16-d'] })).toMatchObject({
      ok: true,
      result: { evicted: [] },
    });
    expect(await socket.request('subscribeUserStatus', { userIDList: ['bi16-e'] })).toMatchObject({
      ok: true,
      result: { evicted: ['bi16-c'] },
    });
  });

  it('badInput - a custom status of exactly 256 UTF-8 bytes is accepted', async () => {
    const socket = await openLoggedIn('bi17-alice', 1);
    const customStatus = '😀'.repeat(64);
    expect(new TextEncoder().encode(customStatus).length).toBe(256);

    expect(await socket.request('setSelfStatus', { customStatus })).toMatchObject({ ok: true, result: { status: { customStatus } } });
    expect((await selfStatus(socket, 'bi17-alice')).customStatus).toBe(customStatus);
  });

  it('badInput - a custom status of 257 UTF-8 bytes is refused with 6017 and changes nothing', async () => {
    const socket = await openLoggedIn('bi18-alice', 2);
    expect(await socket.request('setSelfStatus', { customStatus: '😀'.repeat(64) })).toMatchObject({ ok: true });
    const before = await selfStatus(socket, 'bi18-alice');

    expectRefused(await socket.request('setSelfStatus', { customStatus: `${'😀'.repeat(64)}a` }));

    expect(await selfStatus(socket, 'bi18-alice')).toEqual(before);
  });

  it('badInput - bad ids in a basic-edition app are refused with 7013 before 6017', async () => {
    const socket = await openLoggedIn('bi28-alice', 0, basicApp);
    const tooMany = Array.from({ length: 600 }, (_, i) => `u${i}`);
    expectRefused(await socket.request('getUserStatus', { userIDList: ['bi28-bob'] }), 7013);
    expectRefused(await socket.request('getUserStatus', { userIDList: ['bi28-bob', 'a b'] }), 7013);
    expectRefused(await socket.request('getUserStatus', { userIDList: tooMany }), 7013);
    expectRefused(await socket.request('subscribeUserStatus', { userIDList: ['a/b'] }), 7013);
  });

  it('badInput - bad ids with the user-status switch off are refused with 72001 before 6017', async () => {
    const socket = await openLoggedIn('bi29-alice', 1, switchedOffApp);
    const tooMany = Array.from({ length: 600 }, (_, i) => `u${i}`);
    expectRefused(await socket.request('getUserStatus', { userIDList: ['bi29-bob'] }), 72001);
    expectRefused(await socket.request('getUserStatus', { userIDList: ['bi29-bob', 'a b'] }), 72001);
    expectRefused(await socket.request('getUserStatus', { userIDList: tooMany }), 72001);
    expectRefused(await socket.request('subscribeUserStatus', { userIDList: ['a/b'] }), 72001);
  });

  it('badInput - every call before login is refused with 6014', async () => {
    const socket = await open(0);
    expectRefused(await socket.request('logout', {}), 6014);
    expectRefused(await socket.request('setSelfStatus', { customStatus: 'x' }), 6014);
    expectRefused(await socket.request('getUserStatus', { userIDList: ['bi19-bob'] }), 6014);
    expectRefused(await socket.request('subscribeUserStatus', { userIDList: ['bi19-bob'] }), 6014);
    expectRefused(await socket.request('unsubscribeUserStatus', {}), 6014);
  });

  it('badInput - a second login on one socket as another user is refused with 6017', async () => {
    const socket = await openLoggedIn('bi20-alice', 1);

    expectRefused(await socket.request('login', loginArgs('bi20-bob')));

    expect((await selfStatus(socket, 'bi20-alice')).statusType).toBe(UserStatusType.ONLINE);
    expect((await deployment.admin.status(app.sdkAppID, ['bi20-bob']))[0]).toMatchObject({ statusType: UserStatusType.UNLOGINED, version: 0 });
  });

  it('badInput - logging in again as the same user and device answers the current login', async () => {
    const socket = await open(2);
    const first = await socket.request('login', loginArgs('bi21-alice', app, { deviceId: 'desk' }));
    expect(first).toMatchObject({ ok: true, result: { deviceId: 'desk' } });

    const again = await socket.request('login', loginArgs('bi21-alice', app, { deviceId: 'desk' }));

    expect(again).toMatchObject({ ok: true, result: { deviceId: 'desk' } });
    expect((again.result!.status as { version: number }).version).toBe((first.result!.status as { version: number }).version);
  });

  it('badInput - an invalid deviceId or platform is refused with 6017', async () => {
    const socket = await open(0);
    for (const extra of [{ deviceId: 'a b' }, { deviceId: 'd'.repeat(65) }, { deviceId: '' }, { deviceId: 7 }, { deviceId: '__proto__' }, { platform: 'amiga' }]) {
      expectRefused(await socket.request('login', loginArgs('bi22-alice', app, extra)));
    }
    expect((await deployment.admin.status(app.sdkAppID, ['bi22-alice']))[0]).toMatchObject({ statusType: UserStatusType.UNLOGINED });
  });

  it('badInput - a login with a malformed userSig is refused with 70003', async () => {
    const socket = await open(2);
    expectRefused(await socket.request('login', { ...loginArgs('bi27-alice'), userSig: 'not-a-usersig' }), 70003);
    expectRefused(await socket.request('getUserStatus', { userIDList: ['bi27-alice'] }), 6014);
  });

  it('badInput - a login to an unknown sdkAppID is refused with 70020', async () => {
    const socket = await open(1);
    expectRefused(await socket.request('login', { ...loginArgs('bi23-alice'), sdkAppID: 1 }), 70020);
  });

  it('badInput - unknown fields in frames and args are ignored', async () => {
    const socket = await openLoggedIn('bi24-alice', 2);
    socket.send({ t: 'req', id: 99, op: 'setSelfStatus', args: { customStatus: 'extra', colour: 'red' }, trace: 'abc' });
    expect(await socket.response(99)).toMatchObject({ ok: true, result: { status: { customStatus: 'extra' } } });
  });

  it('badInput - a device SDK client is undisturbed by bad frames on other sockets', async () => {
    const alice = await loginDevice(deployment, app, 'bi25-alice', { node: 0 });
    devices.push(alice);
    const bob = await loginDevice(deployment, app, 'bi25-bob', { node: 1 });
    devices.push(bob);
    await bob.client.subscribeUserStatus(['bi25-alice']);
    const garbage = await open(0);
    garbage.sendBytes(Uint8Array.of(0xc1, 0xc1));
    garbage.send([1]);
    garbage.sendText('hello');
    for (let i = 0; i < 3; i++) await garbage.nextError();

    await alice.client.setSelfStatus({ customStatus: 'fine' });

    await bob.waitForStatus('bi25-alice', (s) => s.customStatus === 'fine');
    expect(alice.states).not.toContain('disconnected');
  });
});
