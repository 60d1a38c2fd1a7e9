import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { DEFAULT_LIMITS, UserActor, UserStatusType, type AppPolicy } from '../../src/actors/index.js';
import { encode } from '../../src/cluster/codec.js';
import { UserStore } from '../../src/cluster/stores/users.js';
import { userKey } from '../../src/cluster/subjects.js';
import { MemoryKvBucket } from '../../src/cluster/transport/memoryKv.js';

const APP = 1400000001;

/** How values were written before records: plain msgpack maps. */
const earlier = new Packr({ useRecords: false, moreTypes: false });

const policy: AppPolicy = { edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify: false, limits: DEFAULT_LIMITS };
const device = { deviceId: 'web', connId: 'c1', policy };

function setup() {
  const clock = new SimulatedClock();
  clock.set(1_700_000_000_000);
  const store = new UserStore(new MemoryKvBucket('pres_users'));
  const actor = new UserActor({ sdkAppID: APP, userID: 'alice', clock });
  let revision = 0;
  const save = async () => {
    revision = await store.save(APP, actor.status, actor.persistedSnapshot(), [], revision);
  };
  return { store, actor, save };
}

describe('user store', () => {
  it('user store - a user never stored reads as UNLOGINED, version 0', async () => {
    const { store } = setup();
    expect(await store.status(APP, 'nobody')).toEqual({ userID: 'nobody', statusType: UserStatusType.UNLOGINED, customStatus: '', version: 0, lastSeenAt: 0 });
  });

  it('user store - the status read back is the one in the last snapshot written, as the actor sees it', async () => {
    const { store, actor, save } = setup();
    actor.step({ type: 'LOGIN', requestId: 'r1', gatewayId: 'gw', platform: 'web', ...device });
    actor.step({ type: 'SET_CUSTOM_STATUS', requestId: 'r2', customStatus: 'in a call', ...device });
    await save();
    const online = await store.status(APP, 'alice');
    expect(online).toEqual(actor.status);
    expect(online).toMatchObject({ statusType: UserStatusType.ONLINE, customStatus: 'in a call' });

    actor.step({ type: 'LOGOUT', requestId: 'r3', ...device });
    expect(await store.status(APP, 'alice')).toEqual(online);
    await save();
    const after = await store.status(APP, 'alice');
    expect(after).toEqual(actor.status);
    const loaded = await store.load(APP, 'alice');
    expect(new UserActor({ sdkAppID: APP, userID: 'alice', clock: new SimulatedClock(), snapshot: loaded!.snapshot }).status).toEqual(after);
    expect(after.statusType).not.toBe(UserStatusType.ONLINE);
    expect(after.version).toBeGreaterThan(online.version);
  });

  it('user store - the subscriptions and rate windows are stored as the actor holds them, and saving leaves the actor\'s own lists alone', async () => {
    const { store, actor, save } = setup();
    actor.step({ type: 'LOGIN', requestId: 'r1', gatewayId: 'gw', platform: 'web', ...device });
    actor.step({ type: 'SUBSCRIBE', requestId: 'r2', userIDs: ['bob', 'carol'], ...device });
    actor.step({ type: 'QUERY', requestId: 'r3', userIDs: ['bob'], ...device });
    const { subscriptions, rateWindows } = actor.context;
    const held = { subscriptions: structuredClone(subscriptions), rateWindows: structuredClone(rateWindows) };
    expect(Object.keys(rateWindows).sort()).toEqual(['getUserStatus', 'subscribeUserStatus']);
    await save();
    // The encoder was handed copies: the actor's lists are the same arrays, unchanged.
    expect(actor.context.subscriptions).toBe(subscriptions);
    expect(actor.context.rateWindows).toBe(rateWindows);
    expect({ subscriptions, rateWindows }).toEqual(held);
    const loaded = await store.load(APP, 'alice');
    expect(loaded!.snapshot.context.subscriptions).toEqual(held.subscriptions);
    expect(loaded!.snapshot.context.rateWindows).toEqual(held.rateWindows);
    expect(loaded!.snapshot.context.devices).toEqual(actor.context.devices);
  });

  it('user store - the status of another app\'s user of the same userID is its own', async () => {
    const { store, actor, save } = setup();
    actor.step({ type: 'LOGIN', requestId: 'r1', gatewayId: 'gw', platform: 'web', ...device });
    await save();
    expect((await store.status(APP, 'alice')).statusType).toBe(UserStatusType.ONLINE);
    expect((await store.status(APP + 1, 'alice')).statusType).toBe(UserStatusType.UNLOGINED);
  });

  it('user store - a device dropped without logout is read back as the actor sees it', async () => {
    const { store, actor, save } = setup();
    actor.step({ type: 'LOGIN', requestId: 'r1', gatewayId: 'gw', platform: 'web', ...device });
    actor.step({ type: 'DISCONNECT', requestId: 'r2', ...device });
    await save();
    expect(await store.status(APP, 'alice')).toEqual(actor.status);
  });

  it('user store - the status is read without decoding the record after it', async () => {
    const bucket = new MemoryKvBucket('pres_users');
    const online = { userID: 'alice', statusType: UserStatusType.ONLINE, customStatus: 'x', version: 3, lastSeenAt: 0 };
    const notMsgpack = new Uint8Array([0xc1, 0xc1, 0xc1]);
    await bucket.create(userKey(APP, 'alice'), new Uint8Array([...encode(online), ...notMsgpack]));
    expect(await new UserStore(bucket).status(APP, 'alice')).toEqual(online);
  });

  it('user store - a value holding only the record (written before the status led it) still reads and restores', async () => {
    const bucket = new MemoryKvBucket('pres_users');
    const clock = new SimulatedClock();
    const actor = new UserActor({ sdkAppID: APP, userID: 'alice', clock });
    actor.step({ type: 'LOGIN', requestId: 'r1', gatewayId: 'gw', platform: 'web', ...device });
    const outbox = [{ id: 'e1' }] as never[];
    await bucket.create(userKey(APP, 'alice'), earlier.pack({ snapshot: actor.persistedSnapshot(), outbox }));
    const store = new UserStore(bucket);
    expect(await store.status(APP, 'alice')).toEqual(actor.status);
    const loaded = await store.load(APP, 'alice');
    expect(loaded?.outbox).toEqual(outbox);
    expect(new UserActor({ sdkAppID: APP, userID: 'alice', clock, snapshot: loaded!.snapshot }).status).toEqual(actor.status);
  });

  it('user store - a value holding the bare snapshot (written before the outbox existed) still reads', async () => {
    const bucket = new MemoryKvBucket('pres_users');
    const clock = new SimulatedClock();
    const actor = new UserActor({ sdkAppID: APP, userID: 'alice', clock });
    actor.step({ type: 'LOGIN', requestId: 'r1', gatewayId: 'gw', platform: 'web', ...device });
    await bucket.create(userKey(APP, 'alice'), earlier.pack(actor.persistedSnapshot()));
    const store = new UserStore(bucket);
    expect(await store.status(APP, 'alice')).toEqual(actor.status);
    expect((await store.load(APP, 'alice'))?.outbox).toEqual([]);
  });
});
