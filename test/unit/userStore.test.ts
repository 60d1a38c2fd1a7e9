import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { DEFAULT_LIMITS, UserActor, UserStatusType, type AppPolicy } from '../../src/actors/index.js';
import { UserStore } from '../../src/cluster/stores/users.js';
import { MemoryKvBucket } from '../../src/cluster/transport/memoryKv.js';

const APP = 1400000001;

const policy: AppPolicy = { edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify: false, limits: DEFAULT_LIMITS };
const device = { deviceId: 'web', connId: 'c1', policy };

function setup() {
  const clock = new SimulatedClock();
  clock.set(1_700_000_000_000);
  const store = new UserStore(new MemoryKvBucket('pres_users'));
  const actor = new UserActor({ sdkAppID: APP, userID: 'alice', clock });
  let revision = 0;
  const save = async () => {
    revision = await store.save(APP, 'alice', actor.persistedSnapshot(), [], revision);
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
    expect(after.statusType).not.toBe(UserStatusType.ONLINE);
    expect(after.version).toBeGreaterThan(online.version);
  });

  it('user store - the status of another app\'s user of the same userID is its own', async () => {
    const { store, actor, save } = setup();
    actor.step({ type: 'LOGIN', requestId: 'r1', gatewayId: 'gw', platform: 'web', ...device });
    await save();
    expect((await store.status(APP, 'alice')).statusType).toBe(UserStatusType.ONLINE);
    expect((await store.status(APP + 1, 'alice')).statusType).toBe(UserStatusType.UNLOGINED);
  });
});
