import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { DEFAULT_LIMITS } from '../../src/actors/index.js';
import type { Device, UserStatus } from '../../src/actors/types.js';
import { decode, encode } from '../../src/cluster/codec.js';
import type { GatewayDelivery, ShardCommand } from '../../src/cluster/commands.js';
import { DeliveryBatcher } from '../../src/cluster/delivery.js';
import { FanOut } from '../../src/cluster/fanout.js';
import { shardOf } from '../../src/cluster/shards.js';
import { ShardHost, type Resident } from '../../src/cluster/shardHost.js';
import { AppRegistry, type AppConfig } from '../../src/cluster/stores/apps.js';
import { FriendStore } from '../../src/cluster/stores/friends.js';
import { UserStore } from '../../src/cluster/stores/users.js';
import { subjects, userKey } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import { MemoryKvBucket } from '../../src/cluster/transport/memoryKv.js';
import type { Transport } from '../../src/cluster/transport/types.js';
import { createLogger } from '../../src/log.js';
import { LinkTransport } from '../support/linkTransport.js';
import { waiter } from '../support/waiter.js';

/**
 * The shard host offers a device coming back the statuses its user follows, read from the store
 * (`pushFollowed`). One read older than a status this node's fan-out already sent for that user
 * must not be pushed after it.
 */

const log = createLogger({ level: 'silent' });
const app: AppConfig = {
  sdkAppID: 1400000001,
  secretKey: 'fanout-offer-stale-test-secret',
  edition: 'premium',
  userStatusEnabled: true,
  friendStatusAutoNotify: false,
  limits: DEFAULT_LIMITS,
};
const APP = app.sdkAppID;
const GATEWAY = 'gw';

const status = (userID: string, version: number): UserStatus => ({ userID, statusType: 1, customStatus: `v${version}`, version, lastSeenAt: 0 });
const device = (connId: string): Device => ({ connId, gatewayId: GATEWAY, platform: 'web', heartbeatDeadline: 0 });

/** Every push the node sends gateway `gw`, as `<connId><-<userID>@<version>`, in order; `handled` hears each message. */
function gatewayLog(transport: Transport) {
  const pushed: string[] = [];
  const handled = waiter<GatewayDelivery>();
  transport.subscribe(subjects.gatewayOut(GATEWAY), (data) => {
    const message = decode<GatewayDelivery>(data);
    for (const [connId, indexes] of message.pushes ?? []) {
      for (const i of indexes) pushed.push(`${connId}<-${message.statuses![i]!.userID}@${message.statuses![i]!.version}`);
    }
    handled.heard(message);
  });
  /** Resolves once the gateway has been sent a message pushing `userID@version`. */
  const sent = (userID: string, version: number) =>
    handled.next((message) => (message.statuses ?? []).some((s) => s.userID === userID && s.version === version));
  return { pushed, sent };
}

describe('fanout offer of a stale status', () => {
  let cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const step of cleanup.reverse()) await step();
    cleanup = [];
  });

  it('fanout offer - a stored status older than one the node dispatched is not pushed to the devices coming back', async () => {
    const transport = new EmbeddedTransport();
    cleanup.push(() => transport.close());
    const fanout = new FanOut<string>(transport, new DeliveryBatcher(transport), (w) => [device(`c-${w}`)]);
    const gateway = gatewayLog(transport);
    fanout.follow('w1', APP, new Set(), new Set(['a']));
    fanout.follow('w2', APP, new Set(), new Set(['a']));
    transport.publish(subjects.statusChanges(APP), encode({ app: APP, at: Date.now(), statuses: [status('a', 5)] }));
    await gateway.sent('a', 5);
    // w2's device comes back, its store read older than a@5; then a@6 reaches every watcher.
    fanout.offer(APP, status('a', 4), [device('c-w2-back')]);
    transport.publish(subjects.statusChanges(APP), encode({ app: APP, at: Date.now(), statuses: [status('a', 6)] }));
    await gateway.sent('a', 6);
    expect(gateway.pushed.filter((p) => p.startsWith('c-w2-back'))).toEqual([]);
    expect(gateway.pushed.filter((p) => p.startsWith('c-w2<'))).toEqual(['c-w2<-a@5', 'c-w2<-a@6']);
  });

  it('fanout offer - a device logging in while a user it follows changes is not pushed the older stored status after the newer one', async () => {
    const net = new EmbeddedTransport();
    const apps = new AppRegistry(new MemoryKvBucket('pres_apps'));
    await apps.start();
    await apps.put(app);
    // Node A holds the watcher, node B the watched user; A reaches the shared users bucket over a link
    // that lets the test act between a read and its answer.
    const link = new LinkTransport(net);
    const hostOn = async (nodeId: string, transport: Transport) => {
      const delivery = new DeliveryBatcher(transport);
      let fanout: FanOut<Resident> | undefined;
      const clock = new SimulatedClock();
      clock.set(1_700_000_000_000);
      const host: ShardHost = new ShardHost({
        nodeId,
        transport,
        users: new UserStore(await transport.kv('pres_users')),
        friends: new FriendStore(new MemoryKvBucket('pres_friends')),
        apps,
        fanout: () => fanout!,
        delivery,
        clock,
        log,
      });
      fanout = new FanOut<Resident>(transport, delivery, (resident) => host.devicesOf(resident));
      return host;
    };
    const a = await hostOn('node-a', link);
    const b = await hostOn('node-b', net);
    cleanup.push(async () => {
      await a.stop();
      await b.stop();
      await net.close();
    });
    const [watcher, watched] = ['wendy', 'ursula'];
    expect(shardOf(APP, watcher)).not.toBe(shardOf(APP, watched));
    a.serve([shardOf(APP, watcher)]);
    b.serve([shardOf(APP, watched)]);
    const gateway = gatewayLog(net);

    const login = (user: string, deviceId: string, gatewayId: string, platform: 'web' | 'android'): ShardCommand =>
      ({ op: 'login', app: APP, user, deviceId, connId: `c-${deviceId}`, gatewayId, platform, sigTime: 0 });
    const setStatus = (customStatus: string): ShardCommand =>
      ({ op: 'setCustomStatus', app: APP, user: watched, deviceId: 'u-phone', connId: 'c-u-phone', customStatus });

    expect(await a.handleHere(login(watcher, 'w-web', GATEWAY, 'web'))).toMatchObject({ ok: true });
    expect(await a.handleHere({ op: 'subscribe', app: APP, user: watcher, deviceId: 'w-web', connId: 'c-w-web', userIDs: [watched] })).toMatchObject({ ok: true });
    const two = gateway.sent(watched, 2);
    expect(await b.handleHere(login(watched, 'u-phone', 'gw-elsewhere', 'android'))).toMatchObject({ ok: true, status: { version: 1 } });
    expect(await b.handleHere(setStatus('two'))).toMatchObject({ ok: true, status: { version: 2 } });
    await two;

    // Wendy's phone logs in; A reads ursula's stored status (version 2), and before the read
    // answers, ursula changes on B (version 3), which A's fan-out sends both of wendy's devices.
    link.beforeGetAnswers = async (key) => {
      if (key !== userKey(APP, watched)) return;
      link.beforeGetAnswers = undefined;
      const sent = gateway.sent(watched, 3);
      expect(await b.handleHere(setStatus('three'))).toMatchObject({ ok: true, status: { version: 3 } });
      await sent;
    };
    expect(await a.handleHere(login(watcher, 'w-phone', GATEWAY, 'android'))).toMatchObject({ ok: true });
    expect(link.beforeGetAnswers).toBeUndefined();
    // A later change: whatever A pushed before it has reached the gateway once it has.
    const last = gateway.sent(watched, 4);
    expect(await b.handleHere(setStatus('four'))).toMatchObject({ ok: true, status: { version: 4 } });
    await last;

    expect(gateway.pushed.filter((p) => p.startsWith('c-w-phone<'))).toEqual(['c-w-phone<-ursula@3', 'c-w-phone<-ursula@4']);
    expect(gateway.pushed.filter((p) => p.startsWith('c-w-web<-ursula'))).toEqual(['c-w-web<-ursula@1', 'c-w-web<-ursula@2', 'c-w-web<-ursula@3', 'c-w-web<-ursula@4']);
  });
});
