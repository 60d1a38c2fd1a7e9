import { SimulatedClock } from 'xstate';
import { DEFAULT_LIMITS } from '../../src/actors/index.js';
import { DeliveryBatcher } from '../../src/cluster/delivery.js';
import { FanOut } from '../../src/cluster/fanout.js';
import { ShardHost, type Resident } from '../../src/cluster/shardHost.js';
import { AppRegistry } from '../../src/cluster/stores/apps.js';
import { FriendStore } from '../../src/cluster/stores/friends.js';
import { UserStore } from '../../src/cluster/stores/users.js';
import { MemoryKvBucket } from '../../src/cluster/transport/memoryKv.js';
import type { KvBucket, Transport } from '../../src/cluster/transport/types.js';
import { createLogger } from '../../src/log.js';

export const FIXTURE_APP = 1400000001;

export interface ShardHostFixtureOptions {
  nodeId?: string;
  /** The `users` bucket, for a test that holds or inspects its calls; in process otherwise. */
  users?: KvBucket;
  /** The `active` index, for a test of restores; none otherwise, as on one embedded node. */
  active?: KvBucket;
  /** The app's webhook URL, for a test of webhooks. */
  callbackUrl?: string;
}

/**
 * One node's shard host on `transport`, with its fan-out, in-process buckets, one premium app
 * (`FIXTURE_APP`) and a simulated clock: what a test of the host's own behaviour needs, serving
 * no shard until the test says which.
 */
export async function shardHostOn(transport: Transport, { nodeId = 'n1', users, active, callbackUrl }: ShardHostFixtureOptions = {}) {
  const clock = new SimulatedClock();
  clock.set(1_700_000_000_000);
  const apps = new AppRegistry(new MemoryKvBucket('pres_apps') as KvBucket);
  await apps.start();
  await apps.put({ sdkAppID: FIXTURE_APP, secretKey: 'k', edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify: false, limits: DEFAULT_LIMITS, ...(callbackUrl ? { callbackUrl } : {}) });
  const delivery = new DeliveryBatcher(transport);
  let fanout: FanOut<Resident> | undefined;
  const shardHost: ShardHost = new ShardHost({
    nodeId,
    transport,
    users: new UserStore(users ?? new MemoryKvBucket('pres_users')),
    friends: new FriendStore(new MemoryKvBucket('pres_friends')),
    apps,
    fanout: () => fanout!,
    delivery,
    clock,
    log: createLogger({ level: 'silent' }),
    ...(active ? { active } : {}),
  });
  fanout = new FanOut<Resident>(transport, delivery, (resident) => shardHost.devicesOf(resident));
  return { shardHost, clock, delivery };
}
