import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { DEFAULT_LIMITS } from '../../src/actors/index.js';
import { UserStatusType } from '../../src/actors/types.js';
import type { ShardCommand } from '../../src/cluster/commands.js';
import { ErrorCode } from '../../src/errors.js';
import { DeliveryBatcher } from '../../src/cluster/delivery.js';
import { FanOut } from '../../src/cluster/fanout.js';
import { SHARD_COUNT, shardOf } from '../../src/cluster/shards.js';
import { ShardHost, type Resident } from '../../src/cluster/shardHost.js';
import { AppRegistry } from '../../src/cluster/stores/apps.js';
import { FriendStore } from '../../src/cluster/stores/friends.js';
import { UserStore } from '../../src/cluster/stores/users.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import { MemoryKvBucket } from '../../src/cluster/transport/memoryKv.js';
import type { KvBucket } from '../../src/cluster/transport/types.js';
import { createLogger } from '../../src/log.js';

const APP = 1400000001;
const HB = DEFAULT_LIMITS.heartbeatTimeoutMs;

/** A `users` bucket whose writes can be held, to keep a command's persist pending. */
class GatedBucket extends MemoryKvBucket {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }

  release(): void {
    this.open?.();
    this.gate = undefined;
  }

  override async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    await this.gate;
    return super.update(key, value, revision);
  }

  /** Holds reads too: `readsToo` is set for the `friends` bucket, whose reads a friend change awaits. */
  readsToo = false;

  /** Reads fail while set, as a KV call does once JetStream stayed unreachable for its whole retry. */
  failingReads = false;

  /** Reads asked for, failed ones included. */
  reads = 0;

  override async get(key: string) {
    this.reads++;
    if (this.readsToo) await this.gate;
    if (this.failingReads) throw new Error('JetStream did not answer');
    return super.get(key);
  }
}

/**
 * A bucket whose reads, while `holding`, take their value at once and answer only when the test
 * releases them, in any order: a KV read that was answered before a write but arrives after it.
 */
class HeldReadsBucket extends MemoryKvBucket {
  holding = false;
  /** Releases of the reads held so far, in the order they were made. */
  readonly held: Array<() => void> = [];
  private onHeld: (() => void) | undefined;

  override async get(key: string) {
    const entry = await super.get(key);
    if (!this.holding) return entry;
    await new Promise<void>((resolve) => {
      this.held.push(resolve);
      this.onHeld?.();
    });
    return entry;
  }

  /** Resolves once `count` reads are held. */
  async heldReads(count: number): Promise<void> {
    while (this.held.length < count) await new Promise<void>((resolve) => (this.onHeld = resolve));
  }
}

/** Writes of every bucket that shares `log`, in order, as `<bucket> <op>`; writes fail while `failing`. */
class RecordingBucket extends MemoryKvBucket {
  failing = false;

  constructor(name: string, private readonly log: string[]) {
    super(name);
  }

  override async put(key: string, value: Uint8Array): Promise<number> {
    this.written('put');
    return super.put(key, value);
  }

  override async create(key: string, value: Uint8Array): Promise<number> {
    this.written('create');
    return super.create(key, value);
  }

  override async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    this.written('update');
    return super.update(key, value, revision);
  }

  private written(op: string): void {
    if (this.failing) throw new Error('JetStream did not answer');
    this.log.push(`${this.name} ${op}`);
  }
}

interface HostOptions {
  writeBehind?: boolean;
  /** The `users` bucket; by default `gate`, one whose writes can be held. */
  users?: MemoryKvBucket;
  /** The `active` index of a clustered node; none by default (one embedded node). */
  active?: KvBucket;
  /** The app's webhook receiver; by default one that refuses every delivery. */
  callbackUrl?: string;
  /** The app's friend switch; off by default. */
  friendStatusAutoNotify?: boolean;
  /** The `friends` bucket; by default one whose reads wait while `hold()` holds them. */
  friendsBucket?: MemoryKvBucket;
}

async function host({ writeBehind = false, callbackUrl = 'http://127.0.0.1:9/', users: usersBucket, active, friendStatusAutoNotify = false, friendsBucket: ownFriendsBucket }: HostOptions = {}) {
  const clock = new SimulatedClock();
  clock.set(1_700_000_000_000);
  const transport = new EmbeddedTransport();
  const gate = new GatedBucket('pres_users');
  const users = usersBucket ?? gate;
  const apps = new AppRegistry(new MemoryKvBucket('pres_apps') as KvBucket);
  await apps.start();
  // The callback refuses every delivery, so each webhook stays in the user's outbox, in order.
  await apps.put({ sdkAppID: APP, secretKey: 'k', edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify, limits: DEFAULT_LIMITS, ...(callbackUrl ? { callbackUrl } : {}) });
  const delivery = new DeliveryBatcher(transport);
  const store = new UserStore(users);
  const friendsBucket = new GatedBucket('pres_friends');
  friendsBucket.readsToo = true;
  const friends = new FriendStore(ownFriendsBucket ?? friendsBucket);
  // What the gateway `gw` (every device here) was sent: `[connId, userID]` per status pushed.
  const pushed: Array<[string, string]> = [];
  let delivered: (() => void) | undefined;
  delivery.connectLocal('gw', (message) => {
    for (const [connId, indexes] of message.pushes ?? []) for (const i of indexes) pushed.push([connId, message.statuses![i]!.userID]);
    delivered?.();
  });
  const pushedTo = (connId: string) => pushed.filter(([c]) => c === connId).map(([, userID]) => userID);
  let fanout: FanOut<Resident> | undefined;
  const shardHost: ShardHost = new ShardHost({
    nodeId: 'n1',
    transport,
    users: store,
    friends,
    apps,
    fanout: () => fanout!,
    delivery,
    clock,
    log: createLogger({ level: 'silent' }),
    writeBehind,
    ...(active ? { active } : {}),
  });
  fanout = new FanOut<Resident>(transport, delivery, (resident) => shardHost.devicesOf(resident));
  shardHost.serve(Array.from({ length: SHARD_COUNT }, (_, shard) => shard));
  const run = (command: ShardCommand) => shardHost.handleHere(command)!;
  return {
    clock,
    gate,
    store,
    run,
    statuses: (userIDs: string[]) => shardHost.statuses(APP, userIDs),
    resident: () => shardHost.resident(APP, 'alice'),
    friends,
    friendsBucket,
    friendsChanged: (userIDs: string[]) => shardHost.friendsChanged(APP, userIDs),
    appChanged: () => shardHost.appChanged(apps.get(APP)!),
    apps,
    /** Users whose status was pushed to a connection so far, pending pushes included. */
    pushedTo: (connId: string) => {
      delivery.flush();
      return pushedTo(connId);
    },
    /** Resolves once pushes to a connection, as they arrive at the gateway, pass `test`. */
    pushesArrive: async (connId: string, test: (userIDs: string[]) => boolean) => {
      while (!test(pushedTo(connId))) await new Promise<void>((resolve) => (delivered = resolve));
    },
    watchedUsers: () => fanout!.interestCount,
    dropShardOf: (userID: string) => shardHost.drop(shardOf(APP, userID)),
    stop: () => shardHost.stop(),
  };
}

const device = (deviceId: string) => ({ app: APP, user: 'alice', deviceId, connId: `c-${deviceId}` });

describe('shard host', () => {
  it('shard host - a timer transition made while commands wait is committed, and its webhook queued, before the commands behind it', async () => {
    const { clock, gate, store, run, stop } = await host();
    await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });

    gate.hold();
    const first = run({ ...device('web'), op: 'setCustomStatus', customStatus: 'first' });
    const second = run({ ...device('ios'), op: 'login', gatewayId: 'gw', platform: 'ios', sigTime: 0 });
    // The first has stepped the actor and waits on its write; the second waits behind it.
    await new Promise((resolve) => setImmediate(resolve));
    // The web device's heartbeat deadline passes while both commands wait on the write: it goes OFFLINE.
    clock.increment(HB + 1);
    gate.release();
    expect(await Promise.all([first, second])).toMatchObject([{ ok: true }, { ok: true }]);
    await stop();

    const { outbox } = (await store.load(APP, 'alice'))!;
    const events = outbox.map((e) => `${e.body.Version}:${e.body.Info.Action}`);
    expect(events).toEqual(['1:Login', '2:Login', '3:Disconnect', '4:Login']);
  });

  it('shard host - a login that reaches the actor after a kick is refused with 70052, though its UserSig was issued before the kick', async () => {
    const { clock, gate, run, statuses, resident, stop } = await host({ callbackUrl: '' });
    const issued = clock.now() / 1000;
    await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: issued });
    clock.increment(2_000);
    gate.hold();
    const kicked = run({ app: APP, user: 'alice', op: 'kick' });
    // Verified by its gateway before the kick, it reaches the actor behind it.
    const late = run({ ...device('ios'), op: 'login', gatewayId: 'gw', platform: 'ios', sigTime: issued });
    await new Promise((resolve) => setImmediate(resolve));
    gate.release();
    expect(await Promise.all([kicked, late])).toMatchObject([{ ok: true }, { ok: false, error: { code: ErrorCode.USERSIG_REVOKED } }]);
    expect(await statuses(['alice'])).toMatchObject([{ statusType: UserStatusType.UNLOGINED }]);
    // The revocation is stored with the user, which left memory (nothing pending): it holds after a reload.
    expect(resident()).toBeUndefined();
    expect(await run({ ...device('ios'), op: 'login', gatewayId: 'gw', platform: 'ios', sigTime: issued + 2 })).toMatchObject({ ok: false, error: { code: ErrorCode.USERSIG_REVOKED } });
    expect(await run({ ...device('ios'), op: 'login', gatewayId: 'gw', platform: 'ios', sigTime: issued + 3 })).toMatchObject({ ok: true });
    await stop();
  });

  it('shard host - a user that leaves memory while a friend change is read takes no fan-out interest afterwards', async () => {
    const { run, resident, friends, friendsBucket, friendsChanged, watchedUsers, dropShardOf, stop } = await host({ callbackUrl: '', friendStatusAutoNotify: true });
    await friends.apply(APP, [['alice', 'bob']], []);
    await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
    expect(watchedUsers()).toBe(1);
    await friends.apply(APP, [['alice', 'carol']], []);

    friendsBucket.hold();
    const change = friendsChanged(['alice']);
    // The node is fenced from alice's shard while her friends are read: her actor leaves memory, online.
    dropShardOf('alice');
    expect(resident()).toBeUndefined();
    expect(watchedUsers()).toBe(0);
    friendsBucket.release();
    await change;

    // Her old record must not watch bob and carol: nothing would ever take it out again.
    expect(watchedUsers()).toBe(0);
    await stop();
  });

  it('shard host - a friend list that cannot be read after an admin change is logged, not a crash, and the one held stays', async () => {
    const { run, friends, friendsBucket, friendsChanged, appChanged, watchedUsers, stop } = await host({ callbackUrl: '', friendStatusAutoNotify: true });
    await friends.apply(APP, [['alice', 'bob']], []);
    await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
    expect(watchedUsers()).toBe(1);

    friendsBucket.failingReads = true;
    // Neither rejects: a rejection nobody handles would end the node (and fail this run).
    await friendsChanged(['alice']);
    appChanged();
    await new Promise((resolve) => setImmediate(resolve));
    expect(watchedUsers()).toBe(1);

    friendsBucket.failingReads = false;
    await friends.apply(APP, [['alice', 'carol']], []);
    await friendsChanged(['alice']);
    expect(watchedUsers()).toBe(2);
    await stop();
  });

  it('shard host - a friend list that could not be read is read again later, at growing intervals, while the user is in memory', async () => {
    const { clock, run, friends, friendsBucket, friendsChanged, pushedTo, dropShardOf, stop } = await host({ callbackUrl: '', friendStatusAutoNotify: true });
    await run({ app: APP, user: 'carol', deviceId: 'web', connId: 'c-carol', op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
    await friends.apply(APP, [['alice', 'bob']], []);
    await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
    await friends.apply(APP, [['alice', 'carol']], [['alice', 'bob']]);
    const turn = () => new Promise((resolve) => setImmediate(resolve));

    friendsBucket.failingReads = true;
    await friendsChanged(['alice']);
    const failed = friendsBucket.reads;
    clock.increment(1_000);
    await turn();
    expect(friendsBucket.reads).toBe(failed + 1); // failed again: the next try waits 2 s
    clock.increment(1_999);
    await turn();
    expect(friendsBucket.reads).toBe(failed + 1);
    friendsBucket.failingReads = false;
    clock.increment(1);
    await turn();
    expect(friendsBucket.reads).toBe(failed + 2);

    await run({ ...device('ios'), op: 'login', gatewayId: 'gw', platform: 'ios', sigTime: 0 });
    expect(pushedTo('c-ios').filter((user) => user !== 'alice')).toEqual(['carol']);
    // Read: no more tries.
    clock.increment(60_000);
    await turn();
    expect(friendsBucket.reads).toBe(failed + 2);

    // A user that leaves memory takes its pending retry with it.
    friendsBucket.failingReads = true;
    await friendsChanged(['alice']);
    dropShardOf('alice');
    const dropped = friendsBucket.reads;
    clock.increment(60_000);
    await turn();
    expect(friendsBucket.reads).toBe(dropped);
    await stop();
  });

  it('shard host - of two friend-list reads that answer out of order, the one started last is kept', async () => {
    const reads = new HeldReadsBucket('pres_friends');
    const { run, friends, friendsChanged, pushedTo, pushesArrive, stop } = await host({ callbackUrl: '', friendStatusAutoNotify: true, friendsBucket: reads });
    for (const user of ['bob', 'carol']) await run({ app: APP, user, deviceId: 'web', connId: `c-${user}`, op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
    await friends.apply(APP, [['alice', 'bob']], []);
    await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });

    await friends.apply(APP, [], [['alice', 'bob']]);
    reads.holding = true;
    const older = friendsChanged(['alice']); // reads []
    await reads.heldReads(1);
    reads.holding = false;
    await friends.apply(APP, [['alice', 'carol']], []);
    reads.holding = true;
    const newer = friendsChanged(['alice']); // reads [carol]
    await reads.heldReads(2);
    reads.holding = false;
    reads.held[1]!();
    await newer;
    reads.held[0]!();
    await older;

    // Her devices hear from carol, not bob: a new device is sent whom she follows...
    await run({ ...device('ios'), op: 'login', gatewayId: 'gw', platform: 'ios', sigTime: 0 });
    expect(pushedTo('c-ios').filter((user) => user !== 'alice')).toEqual(['carol']);
    // ...and a change of carol's reaches her first device through the fan-out.
    const earlier = pushedTo('c-web').length;
    await run({ app: APP, user: 'carol', deviceId: 'web', connId: 'c-carol', op: 'setCustomStatus', customStatus: 'back' });
    await pushesArrive('c-web', (users) => users.slice(earlier).some((user) => user !== 'alice'));
    // (carol's login may arrive there too: the test has not let a tick end since it.)
    expect(new Set(pushedTo('c-web').slice(earlier).filter((user) => user !== 'alice'))).toEqual(new Set(['carol']));
    await stop();
  });

  it('shard host - a friend change announced while the user is being loaded is read again once she is in memory', async () => {
    const reads = new HeldReadsBucket('pres_friends');
    const { run, friends, friendsChanged, pushedTo, stop } = await host({ callbackUrl: '', friendStatusAutoNotify: true, friendsBucket: reads });
    for (const user of ['bob', 'carol']) await run({ app: APP, user, deviceId: 'web', connId: `c-${user}`, op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
    await friends.apply(APP, [['alice', 'bob']], []);

    reads.holding = true;
    const login = run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
    await reads.heldReads(1); // her load has read [bob]
    reads.holding = false;
    await friends.apply(APP, [['alice', 'carol']], [['alice', 'bob']]);
    const change = friendsChanged(['alice']);
    reads.held[0]!();
    expect(await login).toMatchObject({ ok: true });
    await change;

    await run({ ...device('ios'), op: 'login', gatewayId: 'gw', platform: 'ios', sigTime: 0 });
    expect(pushedTo('c-ios').filter((user) => user !== 'alice')).toEqual(['carol']);
    await stop();
  });

  it('shard host - the friend switch turned on while a user is being loaded takes effect once she is in memory', async () => {
    const { gate, run, friends, apps, appChanged, pushedTo, stop } = await host({ callbackUrl: '' });
    await run({ app: APP, user: 'bob', deviceId: 'web', connId: 'c-bob', op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
    await friends.apply(APP, [['alice', 'bob']], []);

    gate.readsToo = true;
    gate.hold();
    // Loaded under the switch off: her load reads no friend list.
    const login = run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
    await apps.put({ ...apps.get(APP)!, friendStatusAutoNotify: true });
    appChanged();
    gate.release();
    expect(await login).toMatchObject({ ok: true });

    await run({ ...device('ios'), op: 'login', gatewayId: 'gw', platform: 'ios', sigTime: 0 });
    expect(pushedTo('c-ios').filter((user) => user !== 'alice')).toEqual(['bob']);
    await stop();
  });

  it.each([
    [true, UserStatusType.ONLINE],
    [false, UserStatusType.OFFLINE],
  ])('shard host - a call that carries the device\'s liveness (%s) moves its heartbeat deadline as a heartbeat would', async (alive, after) => {
    const { clock, run, statuses, stop } = await host();
    await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
    clock.increment(HB - 1_000);
    await run({ ...device('web'), op: 'setCustomStatus', customStatus: 'busy', ...(alive ? { alive: true as const } : {}) });
    // Past the deadline the login set; not past one moved by the call.
    clock.increment(2_000);
    expect(await statuses(['alice'])).toMatchObject([{ userID: 'alice', statusType: after }]);
    await stop();
  });

  describe('write-behind (one node on the in-process transport)', () => {
    const status = (customStatus: string, statusType: UserStatusType, version: number) => ({ userID: 'alice', customStatus, statusType, version });

    it('shard host - a resident actor\'s changes reach the bucket when it leaves memory, not before', async () => {
      const { run, store, statuses, stop } = await host({ writeBehind: true, callbackUrl: '' });
      await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
      await run({ ...device('web'), op: 'setCustomStatus', customStatus: 'busy' });
      expect(await store.load(APP, 'alice')).toBeNull();
      expect(await statuses(['alice'])).toMatchObject([status('busy', UserStatusType.ONLINE, 2)]);

      // Logged out with nothing pending, the actor is passivated: written then, and read back from the bucket.
      await run({ ...device('web'), op: 'logout' });
      expect(await store.status(APP, 'alice')).toMatchObject(status('', UserStatusType.UNLOGINED, 3));
      expect(await statuses(['alice'])).toMatchObject([status('', UserStatusType.UNLOGINED, 3)]);
      await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
      expect(await statuses(['alice'])).toMatchObject([{ statusType: UserStatusType.ONLINE, version: 4 }]);
      await stop();
    });

    it('shard host - stopping writes what the resident actors changed since their last write', async () => {
      const { run, store, stop } = await host({ writeBehind: true, callbackUrl: '' });
      await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
      await run({ ...device('web'), op: 'setCustomStatus', customStatus: 'busy' });
      await stop();
      expect(await store.status(APP, 'alice')).toMatchObject(status('busy', UserStatusType.ONLINE, 2));
    });

    it('shard host - without it, every change is in the bucket before its answer', async () => {
      const { run, store, stop } = await host({ callbackUrl: '' });
      await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
      await run({ ...device('web'), op: 'setCustomStatus', customStatus: 'busy' });
      expect(await store.status(APP, 'alice')).toMatchObject(status('busy', UserStatusType.ONLINE, 2));
      await stop();
    });
  });

  describe('the active index of a clustered node', () => {
    it('shard host - a user is in the index before its snapshot says it is online, so a node dying between the two writes leaves no user nobody restores', async () => {
      const writes: string[] = [];
      const users = new RecordingBucket('pres_users', writes);
      const { run, stop } = await host({ callbackUrl: '', users, active: new RecordingBucket('pres_active', writes) });
      expect(await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 })).toMatchObject({ ok: true });
      expect(writes).toEqual(['pres_active put', 'pres_users create']);
      await stop();
    });

    it('shard host - when the index cannot be written the call fails and nothing of it is stored or kept', async () => {
      const writes: string[] = [];
      const active = new RecordingBucket('pres_active', writes);
      const { run, store, statuses, stop } = await host({ callbackUrl: '', users: new RecordingBucket('pres_users', writes), active });
      active.failing = true;
      expect(await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 })).toMatchObject({ ok: false, error: { code: ErrorCode.INTERNAL_ERROR } });
      expect(writes).toEqual([]);
      expect(await store.load(APP, 'alice')).toBeNull();
      expect(await statuses(['alice'])).toMatchObject([{ statusType: UserStatusType.UNLOGINED, version: 0 }]);
      active.failing = false;
      expect(await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 })).toMatchObject({ ok: true, status: { version: 1 } });
      await stop();
    });

    it('shard host - an actor dropped after a write JetStream did not take is loaded again, so its heartbeat deadline still takes the user OFFLINE', async () => {
      const writes: string[] = [];
      const users = new RecordingBucket('pres_users', writes);
      const { clock, run, store, resident, stop } = await host({ callbackUrl: '', users, active: new RecordingBucket('pres_active', writes) });
      await run({ ...device('web'), op: 'login', gatewayId: 'gw', platform: 'web', sigTime: 0 });
      const ahead = resident();
      users.failing = true;
      expect(await run({ ...device('web'), op: 'setCustomStatus', customStatus: 'busy' })).toMatchObject({ ok: false, error: { code: ErrorCode.INTERNAL_ERROR } });
      users.failing = false;
      // Dropped, and reloaded in the background from what is durable: ONLINE, without the refused change.
      for (let turn = 0; turn < 100 && (!resident() || resident() === ahead); turn++) await new Promise((resolve) => setImmediate(resolve));
      expect(resident()).not.toBe(ahead);
      expect(resident()?.status).toMatchObject({ statusType: UserStatusType.ONLINE, customStatus: '', version: 1 });
      clock.increment(HB + 1);
      for (let turn = 0; turn < 100 && (await store.status(APP, 'alice')).statusType !== UserStatusType.OFFLINE; turn++) await new Promise((resolve) => setImmediate(resolve));
      expect(await store.status(APP, 'alice')).toMatchObject({ statusType: UserStatusType.OFFLINE, version: 2 });
      await stop();
    });
  });
});
