import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { DEFAULT_LIMITS } from '../../src/actors/index.js';
import type { UserStatus } from '../../src/actors/types.js';
import { genUserSig } from '../../src/auth/index.js';
import { decode } from '../../src/cluster/codec.js';
import type { GatewayDelivery, ShardCommand, ShardReply } from '../../src/cluster/commands.js';
import { DeliveryBatcher } from '../../src/cluster/delivery.js';
import { FanOut } from '../../src/cluster/fanout.js';
import type { ShardRouter } from '../../src/cluster/router.js';
import { shardOf } from '../../src/cluster/shards.js';
import { ShardHost, type Resident } from '../../src/cluster/shardHost.js';
import { AppRegistry, type AppConfig } from '../../src/cluster/stores/apps.js';
import { FriendStore } from '../../src/cluster/stores/friends.js';
import { UserStore } from '../../src/cluster/stores/users.js';
import { subjects } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import { MemoryKvBucket } from '../../src/cluster/transport/memoryKv.js';
import type { KvBucket, KvOptions, MessageHandler, RequestHandler, Subscription, Transport } from '../../src/cluster/transport/types.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { PushedVersions } from '../../src/gateway/pushedVersions.js';
import { createLogger } from '../../src/log.js';
import { RawSocket } from '../support/rawSocket.js';
import { waiter } from '../support/waiter.js';

/**
 * A node whose watcher's shard moves while the node is frozen (SIGSTOP): can its late
 * delivery push a device an older status of a user after the newer one the new owner pushed?
 *
 * In process: two shard hosts (A, then B) over one embedded transport, sharing the users and
 * `active` buckets as nodes on NATS share JetStream's (every change written before announced),
 * and a third node's gateway G holding the watcher's device, a real socket. Commands go to
 * whichever host the test names the owner, as the router sends them to the claim holder.
 */

const log = createLogger({ level: 'silent' });
const app: AppConfig = {
  sdkAppID: 1400000001,
  secretKey: 'stale-batch-test-secret',
  edition: 'premium',
  userStatusEnabled: true,
  friendStatusAutoNotify: false,
  limits: DEFAULT_LIMITS,
};
const APP = app.sdkAppID;
const GATEWAY = 'gw-g';
const WATCHER = 'wendy';
const WATCHED = 'ursula';

/**
 * A node's connection to the shared transport that can freeze as a SIGSTOPped process does:
 * from the moment `freezeWhen` picks one of its publishes (`out`) or one of the messages
 * reaching it (`in`), it sends nothing and handles nothing; both wait, in the order they came,
 * and go on `thaw()`: what it had published leaves then, and what reached it is handled then.
 */
class FreezableLink implements Transport {
  readonly kind = 'link';
  freezeWhen: ((direction: 'in' | 'out', subject: string) => boolean) | undefined;
  private frozen = false;
  private readonly held: Array<() => void> = [];
  private readonly froze = waiter<string>();

  constructor(private readonly inner: Transport) {}

  /** Resolves once the link froze, with the subject that froze it. */
  frozenAt(): Promise<string> {
    return this.froze.next(() => true);
  }

  thaw(): void {
    this.frozen = false;
    this.freezeWhen = undefined;
    for (const resume of this.held.splice(0)) resume();
  }

  private stops(direction: 'in' | 'out', subject: string): boolean {
    if (!this.frozen && this.freezeWhen?.(direction, subject)) {
      this.frozen = true;
      this.froze.heard(subject);
    }
    return this.frozen;
  }

  publish(subject: string, data: Uint8Array): void {
    if (this.stops('out', subject)) this.held.push(() => this.inner.publish(subject, data));
    else this.inner.publish(subject, data);
  }

  subscribe(subject: string, handler: MessageHandler): Subscription {
    return this.inner.subscribe(subject, (data, s) => {
      if (this.stops('in', s)) this.held.push(() => handler(data, s));
      else handler(data, s);
    });
  }

  serve(subject: string, handler: RequestHandler, options?: { queue?: string }): Subscription {
    return this.inner.serve(subject, handler, options);
  }

  request(subject: string, data: Uint8Array, options: { timeoutMs: number }): Promise<Uint8Array> {
    return this.inner.request(subject, data, options);
  }

  kv(bucket: string, options?: KvOptions): Promise<KvBucket> {
    return this.inner.kv(bucket, options);
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  async close(): Promise<void> {}
}

/** One presence node's shard host and fan-out, on its own link to the shared transport. */
function shardNode(nodeId: string, net: Transport, shared: { users: KvBucket; active: KvBucket; apps: AppRegistry }) {
  const link = new FreezableLink(net);
  const delivery = new DeliveryBatcher(link);
  let fanout: FanOut<Resident> | undefined;
  const clock = new SimulatedClock();
  clock.set(1_700_000_000_000);
  const host: ShardHost = new ShardHost({
    nodeId,
    transport: link,
    users: new UserStore(shared.users),
    friends: new FriendStore(new MemoryKvBucket('pres_friends')),
    apps: shared.apps,
    fanout: () => fanout!,
    delivery,
    clock,
    log,
    active: shared.active,
  });
  fanout = new FanOut<Resident>(link, delivery, (resident) => host.devicesOf(resident));
  return { link, host };
}

/**
 * `versions` without repeats in a row, when they never go down; else `versions` as they are,
 * so a failure shows the whole sequence.
 */
const inOrder = (versions: number[]): number[] =>
  versions.every((v, i) => i === 0 || v >= versions[i - 1]!) ? versions.filter((v, i) => v !== versions[i - 1]) : versions;

/** The versions of `userID` pushed to a device, in the order it got them. */
const pushedVersions = (device: RawSocket, userID: string): number[] =>
  device.frames.flatMap((frame) => (frame.t === 'push' ? (frame.list as UserStatus[]).filter((s) => s.userID === userID).map((s) => s.version) : []));

const setStatus = (user: string, customStatus: string): ShardCommand => ({
  op: 'setCustomStatus',
  app: APP,
  user,
  deviceId: `${user}-phone`,
  connId: `c-${user}`,
  customStatus,
});

describe('delivery of a frozen node', () => {
  let cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const step of cleanup.reverse()) await step();
    cleanup = [];
  });

  /**
   * Nodes A and B (A serving every shard), gateway G on a third node, wendy's device on G
   * subscribed to ursula (whose device is elsewhere), ursula's login (version 1) and first
   * custom status (version 2), both on A, pushed to the device.
   */
  async function cluster() {
    const net = new EmbeddedTransport();
    const apps = new AppRegistry(new MemoryKvBucket('pres_apps'));
    await apps.start();
    await apps.put(app);
    const shared = { users: new MemoryKvBucket('pres_users'), active: new MemoryKvBucket('pres_active'), apps };
    const a = shardNode('node-a', net, shared);
    const b = shardNode('node-b', net, shared);
    a.host.serve(Array.from({ length: 1024 }, (_, shard) => shard));
    let owner = a.host;
    const router = {
      send: async (cmd: ShardCommand): Promise<ShardReply> =>
        (await owner.handleHere(cmd)) ?? { ok: false, moved: true, error: { code: 6012, desc: 'not served' } },
    } as unknown as ShardRouter;

    const gateway = new Gateway({ gatewayId: GATEWAY, transport: net, delivery: new DeliveryBatcher(net), router, apps, log });
    gateway.start();
    // After the gateway's own subscription: hears each of G's messages once the gateway has handled it.
    const atGateway = waiter<GatewayDelivery>();
    const handled: GatewayDelivery[] = [];
    net.subscribe(subjects.gatewayOut(GATEWAY), (data) => {
      const message = decode<GatewayDelivery>(data);
      handled.push(message);
      atGateway.heard(message);
    });
    const server: Server = createServer();
    server.on('upgrade', (request, socket, head) => gateway.handleUpgrade(request, socket, head));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanup.push(async () => {
      await a.host.stop();
      await b.host.stop();
      await net.close();
    });
    cleanup.push(async () => {
      await gateway.close();
      server.close();
    });

    const device = await RawSocket.open(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`);
    cleanup.push(() => device.terminate());
    const userSig = genUserSig({ sdkAppID: APP, secretKey: app.secretKey, userID: WATCHER });
    expect((await device.request('login', { sdkAppID: APP, userID: WATCHER, userSig, deviceId: 'phone' })).ok).toBe(true);
    expect((await device.request('subscribeUserStatus', { userIDList: [WATCHED] })).ok).toBe(true);
    expect(await owner.handleHere({ op: 'login', app: APP, user: WATCHED, deviceId: `${WATCHED}-phone`, connId: `c-${WATCHED}`, gatewayId: 'gw-elsewhere', platform: 'web', sigTime: 0 })).toMatchObject({ ok: true });
    expect(await owner.handleHere(setStatus(WATCHED, 'on A'))).toMatchObject({ ok: true, status: { version: 2 } });
    await device.nextFrame((f) => f.t === 'push' && pushedVersions({ frames: [f] } as RawSocket, WATCHED).includes(2), 'ursula@2');

    /** B takes A's shards over (A's lease lapsed) and restores their users with something pending. */
    const takeOver = async () => {
      owner = b.host;
      for (const shard of new Set([shardOf(APP, WATCHER), shardOf(APP, WATCHED)])) await b.host.acquire(shard, 1);
    };
    /** Resolves when G has handled a message pushing `userID@version`. */
    const gatewayHandled = (userID: string, version: number) =>
      atGateway.next((message) => (message.statuses ?? []).some((s) => s.userID === userID && s.version === version));
    return { a, device, takeOver, gatewayHandled, handled, owner: () => owner };
  }

  /** The versions of ursula's status in the messages G was handed, in order. */
  const versionsAtGateway = (handled: GatewayDelivery[]) =>
    handled.flatMap((message) => (message.statuses ?? []).filter((s) => s.userID === WATCHED).map((s) => s.version));

  /**
   * B takes over: wendy, restored there, is sent ursula's stored status (version 3), then
   * ursula changes on B (version 4), pushed to the device too.
   */
  async function takeOverAndChangeOnB({ device, takeOver, owner }: Awaited<ReturnType<typeof cluster>>): Promise<void> {
    const restored = device.nextFrame((f) => f.t === 'push' && pushedVersions({ frames: [f] } as RawSocket, WATCHED).includes(3), 'ursula@3 from B');
    await takeOver();
    await restored;
    expect(await owner().handleHere(setStatus(WATCHED, 'on B'))).toMatchObject({ ok: true, status: { version: 4 } });
    await device.nextFrame((f) => f.t === 'push' && pushedVersions({ frames: [f] } as RawSocket, WATCHED).includes(4), 'ursula@4 from B');
  }

  /** A thaws; once G has handled ursula@3 from it after ursula@4, the device must not have gone back. */
  async function thawAndExpectNoStepBack({ a, device, gatewayHandled, handled }: Awaited<ReturnType<typeof cluster>>): Promise<void> {
    const stale = gatewayHandled(WATCHED, 3);
    a.link.thaw();
    await stale;
    // A heartbeat answered after it: every push G made for that message reached the device before.
    await device.heartbeat();
    // The interleaving happened: G was handed version 3 after version 4.
    const atGateway = versionsAtGateway(handled);
    expect(atGateway.lastIndexOf(3)).toBeGreaterThan(atGateway.indexOf(4));
    // The device never went back: 1 (ursula's login), 2 and 3 from A, 3 again from B (the
    // stored status sent to a watcher restored there), 4 from B; a repeat of 4 may follow.
    expect(inOrder(pushedVersions(device, WATCHED))).toEqual([1, 2, 3, 4]);
  }

  it('delivery - a batch a frozen node had in flight to a gateway, arriving after the new owner pushed newer statuses, pushes no device an older version', async () => {
    const setup = await cluster();
    const { a, owner } = setup;
    // A writes ursula's next change (version 3), fans it out, and freezes as its batch for G leaves.
    a.link.freezeWhen = (direction, subject) => direction === 'out' && subject === subjects.gatewayOut(GATEWAY);
    const frozen = a.link.frozenAt();
    expect(await owner().handleHere(setStatus(WATCHED, 'still on A'))).toMatchObject({ ok: true, status: { version: 3 } });
    await frozen;
    await takeOverAndChangeOnB(setup);
    // A thaws: its batch (ursula@3) reaches G after G pushed ursula@4.
    await thawAndExpectNoStepBack(setup);
  });

  it('delivery - a frozen node\'s fan-out handling, once thawed, a change older than the new owner\'s pushes no device an older version', async () => {
    const setup = await cluster();
    const { a, owner } = setup;
    // A writes ursula's next change (version 3) and publishes it; it freezes before its own
    // fan-out handles that message, which waits for it (in its socket, as a frozen process's).
    a.link.freezeWhen = (direction, subject) => direction === 'in' && subject === subjects.statusChanges(APP);
    const frozen = a.link.frozenAt();
    expect(await owner().handleHere(setStatus(WATCHED, 'still on A'))).toMatchObject({ ok: true, status: { version: 3 } });
    await frozen;
    // B's change (version 4) waits at A behind A's own version 3.
    await takeOverAndChangeOnB(setup);
    // A thaws before it learns it lost its lease: its fan-out, which last dispatched version 2,
    // handles version 3 and then 4, and sends both to G in one batch.
    await thawAndExpectNoStepBack(setup);
  });

  it('delivery - a gateway lets the same version of a user through to every device, refuses only an older one, and holds each app\'s users apart', () => {
    const versions = new PushedVersions();
    expect(versions.admit(APP, 'ursula', 4, false)).toBe(true);
    // Another device's copy of version 4, from another node: pushed too.
    expect(versions.admit(APP, 'ursula', 4, true)).toBe(true);
    expect(versions.admit(APP, 'ursula', 3, false)).toBe(false);
    expect(versions.admit(APP + 1, 'ursula', 1, false)).toBe(true);
    expect(versions.admit(APP, 'ursula', 5, false)).toBe(true);
    expect(versions.admit(APP, 'ursula', 4, false)).toBe(false);
    // A version that is no count is pushed as it is, and changes nothing.
    expect(versions.admit(APP, 'ursula', Number.NaN, false)).toBe(true);
    expect(versions.admit(APP, 'ursula', 4, false)).toBe(false);
  });

  it('delivery - a gateway holds the versions of a bounded number of users, and keeps those it pushed within the last generation', () => {
    const versions = new PushedVersions(100);
    for (let round = 1; round <= 20; round++) {
      // ursula changes every round, among 50 others seen once each.
      expect(versions.admit(APP, WATCHED, round, false)).toBe(true);
      for (let i = 0; i < 50; i++) versions.admit(APP, `u${round}-${i}`, 1, false);
      expect(versions.size).toBeLessThanOrEqual(200);
      expect(versions.admit(APP, WATCHED, round - 1, false)).toBe(false);
    }
  });
});

