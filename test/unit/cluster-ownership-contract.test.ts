import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { encode } from '../../src/cluster/codec.js';
import { DEFAULT_MEMBERSHIP_TIMING, Membership } from '../../src/cluster/membership.js';
import { desiredOwner } from '../../src/cluster/rendezvous.js';
import { RestoreQueue } from '../../src/cluster/restoreQueue.js';
import { ShardLeases, type ShardServer } from '../../src/cluster/shardLeases.js';
import { AppRegistry, type AppConfig } from '../../src/cluster/stores/apps.js';
import { DEFAULT_LIMITS } from '../../src/actors/types.js';
import { appKey, BUCKETS } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import { MemoryKvBucket } from '../../src/cluster/transport/memoryKv.js';
import type { KvBucket, MessageHandler, Subscription, Transport } from '../../src/cluster/transport/types.js';
import { LinkTransport, flush, makeClock, type ManualClock } from '../support/linkTransport.js';

const { renewMs, deadAfterMs, fenceAfterMs, probeAfterMs, probeConfirmMs } = DEFAULT_MEMBERSHIP_TIMING;
const SHARDS = 64;
const ALL_SHARDS = Array.from({ length: SHARDS }, (_, shard) => shard);
const log = pino({ level: 'silent' });

let transports: EmbeddedTransport[] = [];
let stoppers: Array<() => void> = [];

afterEach(async () => {
  for (const stop of stoppers) stop();
  stoppers = [];
  for (const transport of transports) await transport.close();
  transports = [];
});

/**
 * A node's link whose process can be frozen: what reaches it on core subjects meanwhile waits
 * in its socket, and is handled, in order, when it thaws. Its publishes still go out before
 * the freeze (a heartbeat sent just before a long pause).
 */
class FreezableLink extends LinkTransport {
  frozen = false;
  private readonly waiting: Array<() => void> = [];

  override subscribe(subject: string, handler: MessageHandler): Subscription {
    return super.subscribe(subject, (data, s) => {
      if (this.frozen) this.waiting.push(() => handler(data, s));
      else handler(data, s);
    });
  }

  thaw(): void {
    this.frozen = false;
    for (const deliver of this.waiting.splice(0)) deliver();
  }
}

class FakeServer implements ShardServer {
  readonly serving = new Set<number>();
  async acquire(shard: number): Promise<void> {
    this.serving.add(shard);
  }
  async release(shard: number): Promise<void> {
    this.serving.delete(shard);
  }
  drop(shard: number): void {
    this.serving.delete(shard);
  }
}

interface TestNode {
  id: string;
  membership: Membership;
  leases: ShardLeases;
  server: FakeServer;
  link: FreezableLink;
  dead: boolean;
}

/** Nodes on one embedded transport (one heartbeat subject, one `leases` bucket) and one manual clock, as in cluster-leases.test.ts. */
class Cluster {
  readonly clock: ManualClock = makeClock();
  readonly nodes = new Map<string, TestNode>();
  readonly transport = new EmbeddedTransport();

  constructor() {
    transports.push(this.transport);
  }

  async add(id: string): Promise<TestNode> {
    const link = new FreezableLink(this.transport);
    const incarnation = `${id}-1`;
    const membership = new Membership(link, { nodeId: id, incarnation, startedAt: this.clock.now(), shards: 0, actors: 0 }, this.clock, DEFAULT_MEMBERSHIP_TIMING);
    const server = new FakeServer();
    const leases = new ShardLeases(await link.kv(BUCKETS.leases), membership, incarnation, server, { shardCount: SHARDS, minView: 1, maxMovesPerTick: SHARDS, log });
    await membership.start();
    await leases.start();
    stoppers.push(() => {
      leases.stop();
      membership.stop();
    });
    const node = { id, membership, leases, server, link, dead: false };
    this.nodes.set(id, node);
    return node;
  }

  node(id: string): TestNode {
    return this.nodes.get(id)!;
  }

  get live(): string[] {
    return [...this.nodes.values()].filter((n) => !n.dead).map((n) => n.id).sort();
  }

  kill(id: string): void {
    const node = this.node(id);
    node.leases.stop();
    node.membership.stop();
    node.dead = true;
  }

  /** A hung process: it neither heartbeats nor steps, but its connection stays up (probes of it are answered). */
  hang(id: string): void {
    this.node(id).dead = true;
  }

  /** One renewal period: every node of `ids` probes, heartbeats, then steps (as node.ts does). */
  async round(ids: string[] = this.live, advanceMs = renewMs): Promise<void> {
    this.clock.t += advanceMs;
    await Promise.all(
      ids.map(async (id) => {
        const node = this.node(id);
        node.membership.probeSilent();
        await node.membership.renew().catch(() => undefined);
        await node.leases.tick();
      }),
    );
    await flush();
  }

  async roundsFor(ms: number, ids: string[] = this.live): Promise<void> {
    const from = this.clock.t;
    while (this.clock.t - from < ms) await this.round(ids);
  }

  servers(shard: number): string[] {
    return [...this.nodes.values()].filter((n) => !n.dead && n.server.serving.has(shard)).map((n) => n.id);
  }
}

describe('ownership contract: membership', () => {
  it('membership - a node frozen past deadAfterMs right after a heartbeat is not live when it thaws and handles its own late echo', async () => {
    const cluster = new Cluster();
    const a = await cluster.add('node-a');
    const b = await cluster.add('node-b');
    await cluster.roundsFor(2 * renewMs);
    // node-a sends a heartbeat and freezes before its echo is handled; node-b hears it at once.
    a.link.frozen = true;
    await a.membership.renew();
    await flush();
    await cluster.roundsFor(deadAfterMs, ['node-b']);
    expect(b.membership.isAlive('node-a', 'node-a-1')).toBe(false);
    // It thaws: the echo in its socket was sent before node-b's last renewal of its lease.
    a.link.thaw();
    expect(a.membership.isLive).toBe(false);
  });

  it('membership - a node back from a fence does not count as alive a node that was already dead before its link went', async () => {
    const cluster = new Cluster();
    for (const id of ['node-a', 'node-b', 'node-c', 'node-d']) await cluster.add(id);
    await cluster.roundsFor(2 * renewMs);
    cluster.hang('node-d');
    await cluster.roundsFor(deadAfterMs + renewMs);
    const a = cluster.node('node-a');
    expect(a.membership.view()).toEqual(['node-a', 'node-b', 'node-c']);
    a.link.down = true;
    await cluster.roundsFor(fenceAfterMs + renewMs);
    expect(a.membership.isLive).toBe(false);
    a.link.down = false;
    await cluster.round();
    expect(a.membership.isLive).toBe(true);
    expect(a.membership.view()).toEqual(['node-a', 'node-b', 'node-c']);
  });
});

describe('ownership contract: shard leases', () => {
  it('leases - a node back from a fence before deadAfterMs frees none of its shards to a node long dead', async () => {
    const cluster = new Cluster();
    const ids = ['node-a', 'node-b', 'node-c'];
    for (const id of [...ids, 'node-d']) await cluster.add(id);
    await cluster.roundsFor(3 * renewMs);
    cluster.hang('node-d');
    await cluster.roundsFor(deadAfterMs + 2 * renewMs);
    for (const shard of ALL_SHARDS) expect(cluster.servers(shard), `shard ${shard}`).toEqual([desiredOwner(shard, ids)]);
    const a = cluster.node('node-a');
    a.link.down = true;
    await cluster.roundsFor(fenceAfterMs + renewMs);
    expect(a.server.serving.size).toBe(0);
    a.link.down = false;
    // As long again as a shard of a live node may wait for a hand-over, well short of deadAfterMs.
    await cluster.roundsFor(3 * renewMs);
    for (const shard of ALL_SHARDS) expect(cluster.servers(shard), `shard ${shard}`).toEqual([desiredOwner(shard, ids)]);
  });

  it("leases - a killed node's shards are all served again by the survivors within the probes and two steps", async () => {
    const cluster = new Cluster();
    const ids = ['node-a', 'node-b', 'node-c'];
    for (const id of ids) await cluster.add(id);
    await cluster.roundsFor(3 * renewMs);
    cluster.kill('node-c');
    await cluster.roundsFor(probeAfterMs + probeConfirmMs + 2 * renewMs);
    for (const shard of ALL_SHARDS) expect(cluster.servers(shard), `shard ${shard}`).toEqual([desiredOwner(shard, ['node-a', 'node-b'])]);
  });
});

describe('ownership contract: restore queue', () => {
  /** A restore that waits until the test lets it finish, recording how many run at once. */
  function gatedRestore() {
    const gates: Array<{ key: string; finish: () => void }> = [];
    const started: string[] = [];
    const running = new Map<string, number>();
    let overlap = false;
    const restore = (key: string) =>
      new Promise<void>((resolve) => {
        started.push(key);
        const now = (running.get(key) ?? 0) + 1;
        running.set(key, now);
        if (now > 1) overlap = true;
        gates.push({
          key,
          finish: () => {
            running.set(key, running.get(key)! - 1);
            resolve();
          },
        });
      });
    return { restore, gates, started, overlap: () => overlap };
  }

  it('restore queue - a key queued again while its restore runs is restored once more after it, never twice at once', async () => {
    const { restore, gates, started, overlap } = gatedRestore();
    const queue = new RestoreQueue(restore, log, 4);
    queue.add(['7.1400000001.alice']);
    expect(started).toEqual(['7.1400000001.alice']);
    // The restore read the user; then a write of it failed and it is queued again.
    queue.add(['7.1400000001.alice']);
    expect(started).toHaveLength(1);
    gates.shift()!.finish();
    await flush();
    expect(started).toEqual(['7.1400000001.alice', '7.1400000001.alice']);
    gates.shift()!.finish();
    await flush();
    expect(overlap()).toBe(false);
    expect(queue.pending).toBe(0);
  });

  it('restore queue - a key waiting its turn is queued once however often it is added', async () => {
    const { restore, gates, started } = gatedRestore();
    const queue = new RestoreQueue(restore, log, 1);
    queue.add(['1.a', '1.b']);
    queue.add(['1.b', '1.b']);
    expect(queue.pending).toBe(2);
    gates.shift()!.finish();
    await flush();
    gates.shift()!.finish();
    await flush();
    expect(started).toEqual(['1.a', '1.b']);
    expect(queue.pending).toBe(0);
  });
});

describe('ownership contract: app registry', () => {
  const APP = 1400000001;
  const app = (secretKey: string): AppConfig => ({
    sdkAppID: APP,
    secretKey,
    edition: 'premium',
    userStatusEnabled: true,
    friendStatusAutoNotify: false,
    limits: DEFAULT_LIMITS,
  });

  /** A bucket whose put answers only when the test says, as a slow acknowledgement over the network. */
  class SlowAckBucket implements KvBucket {
    readonly acks: Array<() => void> = [];
    constructor(private readonly inner: KvBucket) {}
    get = (key: string) => this.inner.get(key);
    create = (key: string, value: Uint8Array) => this.inner.create(key, value);
    update = (key: string, value: Uint8Array, revision: number) => this.inner.update(key, value, revision);
    delete = (key: string, revision?: number) => this.inner.delete(key, revision);
    erase = (key: string, revision?: number) => this.inner.erase(key, revision);
    keys = (filter?: string) => this.inner.keys(filter);
    watch: KvBucket['watch'] = (handler) => this.inner.watch(handler);
    async put(key: string, value: Uint8Array): Promise<number> {
      const revision = await this.inner.put(key, value);
      await new Promise<void>((resolve) => this.acks.push(resolve));
      return revision;
    }
  }

  it("app registry - a put acknowledged after the watch brought another node's later put keeps the later one", async () => {
    const shared = new MemoryKvBucket(BUCKETS.apps);
    const slow = new SlowAckBucket(shared);
    const registry = new AppRegistry(slow);
    await registry.start();
    stoppers.push(() => registry.stop());
    const mine = registry.put(app('first'));
    await flush();
    // Another node's admin API changes the app after this write; the watch brings both.
    await new AppRegistry(shared).put(app('second'));
    await flush();
    expect(registry.get(APP)?.secretKey).toBe('second');
    slow.acks.shift()!();
    await mine;
    expect(registry.get(APP)?.secretKey).toBe('second');
  });

  /** A registry started over a link whose first listing read waits for `meanwhile` to change the shared bucket. */
  async function registryStartedWhile(stored: string, meanwhile: (shared: KvBucket) => Promise<void>) {
    const transport = new EmbeddedTransport();
    transports.push(transport);
    const shared = await transport.kv(BUCKETS.apps);
    await shared.put(appKey(APP), encode(app(stored)));
    const link = new LinkTransport(transport);
    link.beforeGetAnswers = async () => {
      link.beforeGetAnswers = undefined;
      await meanwhile(shared);
      await flush();
    };
    const registry = new AppRegistry(await link.kv(BUCKETS.apps));
    await registry.start();
    stoppers.push(() => registry.stop());
    return { registry, shared };
  }

  it('app registry - an app deleted while the start-up listing reads it is not kept', async () => {
    const { registry, shared } = await registryStartedWhile('s', (bucket) => bucket.delete(appKey(APP)));
    expect(await shared.get(appKey(APP))).toBeNull();
    expect(registry.get(APP)).toBeUndefined();
  });

  it('app registry - an app changed while the start-up listing reads it is held as changed', async () => {
    const { registry } = await registryStartedWhile('old', async (bucket) => void (await bucket.put(appKey(APP), encode(app('new')))));
    expect(registry.get(APP)?.secretKey).toBe('new');
  });
});
