import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decode, encode } from '../../src/cluster/codec.js';
import { DEFAULT_MEMBERSHIP_TIMING, Membership } from '../../src/cluster/membership.js';
import { PresenceNode } from '../../src/cluster/node.js';
import { desiredOwner } from '../../src/cluster/rendezvous.js';
import { ShardLeases } from '../../src/cluster/shardLeases.js';
import { BUCKETS } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import type { KvBucket, KvOptions } from '../../src/cluster/transport/types.js';
import { createLogger } from '../../src/log.js';
import { FakeServer, HeldBucket } from '../support/leaseFixtures.js';
import { LinkTransport, flush, makeClock, type ManualClock } from '../support/linkTransport.js';

/**
 * A shard dropped, handed over or fenced while this node's own claim on it (the `create` or
 * `update` of `ShardLeases.acquire`) has not been answered yet. The claim's answer is held
 * by the test (`HeldBucket`) and let go once the drop was decided, so each interleaving is
 * driven exactly; time is the manual clock of the membership, nothing sleeps.
 */

const { renewMs, fenceAfterMs } = DEFAULT_MEMBERSHIP_TIMING;
const SHARDS = 16;
const log = pino({ level: 'silent' });

interface TestNode {
  id: string;
  incarnation: string;
  membership: Membership;
  leases: ShardLeases;
  server: FakeServer;
  claims: HeldBucket;
}

let transports: EmbeddedTransport[] = [];
let stoppers: Array<() => void | Promise<void>> = [];

afterEach(async () => {
  vi.restoreAllMocks();
  for (const stop of stoppers) await stop();
  stoppers = [];
  for (const transport of transports) await transport.close();
  transports = [];
});

/** Nodes on one embedded transport (one heartbeat subject, one `leases` bucket) and one manual clock, as in cluster-leases.test.ts. */
class Cluster {
  readonly clock: ManualClock = makeClock();
  readonly transport = new EmbeddedTransport();
  readonly nodes = new Map<string, TestNode>();

  constructor() {
    transports.push(this.transport);
  }

  async add(id: string): Promise<TestNode> {
    const link = new LinkTransport(this.transport);
    const incarnation = `${id}-1`;
    const membership = new Membership(link, { nodeId: id, incarnation, startedAt: this.clock.now(), shards: 0, actors: 0 }, this.clock, DEFAULT_MEMBERSHIP_TIMING);
    const server = new FakeServer();
    const claims = new HeldBucket(await link.kv(BUCKETS.leases));
    const leases = new ShardLeases(claims, membership, incarnation, server, { shardCount: SHARDS, minView: 1, maxMovesPerTick: SHARDS, log });
    await membership.start();
    await leases.start();
    stoppers.push(() => {
      leases.stop();
      membership.stop();
    });
    const node = { id, incarnation, membership, leases, server, claims };
    this.nodes.set(id, node);
    return node;
  }

  node(id: string): TestNode {
    return this.nodes.get(id)!;
  }

  /** The shared bucket itself, not through any node. */
  bucket(): Promise<KvBucket> {
    return this.transport.kv(BUCKETS.leases);
  }

  async claimOf(shard: number): Promise<{ nodeId: string; revision: number } | undefined> {
    const entry = await (await this.bucket()).get(`shard.${shard}`);
    return entry ? { nodeId: decode<{ nodeId: string }>(entry.value).nodeId, revision: entry.revision } : undefined;
  }

  /** What node.ts does every `renewMs` for one node: heartbeat, then one ownership step. */
  async tick(id: string, { renew = true }: { renew?: boolean } = {}): Promise<void> {
    const node = this.node(id);
    if (renew) await node.membership.renew({ shards: node.leases.heldShards.length });
    await node.leases.tick();
  }

  async rounds(ids: string[], count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      this.clock.t += renewMs;
      await Promise.all(ids.map((id) => this.tick(id)));
      await flush();
      for (let shard = 0; shard < SHARDS; shard++) {
        const servers = ids.filter((id) => this.node(id).server.serving.has(shard));
        expect(servers.length, `servers of shard ${shard} at t=${this.clock.t}: ${servers.join(', ')}`).toBeLessThanOrEqual(1);
      }
    }
  }
}

/** Resolves once `leases` knows `shard`'s claim to be held by `nodeId` (its watch told it). */
function claimSeen(leases: ShardLeases, shard: number, nodeId: string): Promise<void> {
  return new Promise((resolve) => {
    if (leases.claimOf(shard)?.nodeId === nodeId) return resolve();
    const stop = leases.onClaimChange(shard, () => {
      if (leases.claimOf(shard)?.nodeId !== nodeId) return;
      stop();
      resolve();
    });
  });
}

describe('a shard dropped while this node is claiming it', () => {
  it('acquire race - no step starts while a claim is on its way; the next step hands the shard over through release, and its new owner alone serves it', async () => {
    const cluster = new Cluster();
    const a = await cluster.add('node-a');
    const shard = Array.from({ length: SHARDS }, (_, s) => s).find((s) => desiredOwner(s, ['node-a', 'node-b']) === 'node-b')!;
    const hold = a.claims.hold('claim', `shard.${shard}`, { committed: true });
    cluster.clock.t += renewMs;
    const step = cluster.tick('node-a');
    await hold.reached;
    // node-b joins: the shard is now node-b's. node-a's step is still waiting for the answer.
    const b = await cluster.add('node-b');
    await b.membership.renew();
    await flush();
    expect(a.membership.view()).toEqual(['node-a', 'node-b']);
    await a.leases.tick();
    await b.leases.tick();
    await flush();
    // node-a's second step did nothing (its first is still running), and node-b left alone
    // the claim of a live node.
    expect(a.server.callsFor(shard)).toEqual([]);
    expect(b.server.callsFor(shard)).toEqual([]);
    expect((await cluster.claimOf(shard))?.nodeId).toBe('node-a');
    hold.release();
    await step;
    // The claim was its own and nobody else's: node-a serves the shard until it hands it over.
    expect(a.leases.heldShards).toContain(shard);
    expect(a.server.serving.has(shard)).toBe(true);
    await cluster.rounds(['node-a', 'node-b'], 4);
    expect(a.server.callsFor(shard)).toEqual(['acquire', 'release']);
    expect(a.leases.heldShards).not.toContain(shard);
    expect(b.server.callsFor(shard)).toEqual(['acquire']);
    expect(b.leases.heldShards).toContain(shard);
    expect((await cluster.claimOf(shard))?.nodeId).toBe('node-b');
  });

  it('acquire race - a drain (releaseAll) while a claim is on its way hands that shard over too: nothing held or served, no claim left', async () => {
    const cluster = new Cluster();
    const a = await cluster.add('node-a');
    const shard = 5;
    const hold = a.claims.hold('claim', `shard.${shard}`, { committed: true });
    cluster.clock.t += renewMs;
    const step = cluster.tick('node-a');
    await hold.reached;
    await flush();
    // Every other shard is claimed and served; this one's claim is in the bucket, unanswered.
    expect(a.leases.heldShards).toHaveLength(SHARDS - 1);
    expect((await cluster.claimOf(shard))?.nodeId).toBe('node-a');
    const drained = a.leases.releaseAll();
    await flush();
    hold.release();
    await drained;
    await step;
    await hold.answered;
    await flush();
    expect(a.leases.heldShards).toEqual([]);
    expect([...a.server.serving]).toEqual([]);
    expect(a.server.callsFor(shard)).toEqual(['acquire', 'release']);
    expect(await (await cluster.bucket()).keys()).toEqual([]);
  });

  it('acquire race - a claim taken over by another node while this node\'s claim was on its way is not served (no second owner)', async () => {
    const cluster = new Cluster();
    const a = await cluster.add('node-a');
    const shard = 3;
    const hold = a.claims.hold('claim', `shard.${shard}`, { committed: true });
    cluster.clock.t += renewMs;
    const step = cluster.tick('node-a');
    await hold.reached;
    // node-a's claim is in the bucket; another node that judged node-a dead takes it over by
    // compare-and-set on that revision, and node-a's watch shows it before its claim is answered.
    const ours = (await cluster.claimOf(shard))!;
    expect(ours.nodeId).toBe('node-a');
    const seen = claimSeen(a.leases, shard, 'node-b');
    await (await cluster.bucket()).update(`shard.${shard}`, encode({ nodeId: 'node-b', incarnation: 'node-b-1' }), ours.revision);
    await seen;
    hold.release();
    await step;
    await flush();
    expect(a.leases.heldShards).not.toContain(shard);
    expect(a.leases.isServing(shard)).toBe(false);
    expect(a.server.callsFor(shard)).toEqual([]);
    expect(a.leases.claimOf(shard)?.nodeId).toBe('node-b');
    expect((await cluster.claimOf(shard))?.nodeId).toBe('node-b');
    // The other shards of the step are served as usual.
    expect(a.leases.heldShards).toHaveLength(SHARDS - 1);
  });

  it('acquire race - a node fenced while a claim is on its way does not serve the shard, and claims it again by update once live', async () => {
    const cluster = new Cluster();
    const a = await cluster.add('node-a');
    const shard = 7;
    const hold = a.claims.hold('claim', `shard.${shard}`, { committed: true });
    cluster.clock.t += renewMs;
    const step = cluster.tick('node-a');
    await hold.reached;
    // The answer is late past the node's lease: it has not heard itself for fenceAfterMs.
    cluster.clock.t += fenceAfterMs;
    expect(a.membership.isLive).toBe(false);
    hold.release();
    await step;
    await flush();
    expect(a.leases.heldShards).not.toContain(shard);
    expect(a.server.serving.has(shard)).toBe(false);
    expect(a.server.callsFor(shard)).toEqual([]);
    // Its claim stays, as a fence leaves every claim (to lapse, or to be taken again).
    const left = (await cluster.claimOf(shard))!;
    expect(left.nodeId).toBe('node-a');
    // The next step, still fenced, drops what the late step held.
    await cluster.tick('node-a', { renew: false });
    expect(a.leases.heldShards).toEqual([]);
    expect([...a.server.serving]).toEqual([]);
    // Heard again, it claims the shard back on its own claim's revision.
    await cluster.rounds(['node-a'], 2);
    expect(a.membership.isLive).toBe(true);
    expect(a.leases.heldShards).toHaveLength(SHARDS);
    expect(a.server.serving.has(shard)).toBe(true);
    const taken = (await cluster.claimOf(shard))!;
    expect(taken.nodeId).toBe('node-a');
    expect(taken.revision).toBeGreaterThan(left.revision);
  });
});

describe('a node stopping while its ownership step is claiming a shard', () => {
  /** A node's own link to the shared transport whose `leases` bucket holds claims as the test says. */
  class HeldLink extends LinkTransport {
    claims: HeldBucket | undefined;
    override async kv(bucket: string, options?: KvOptions): Promise<KvBucket> {
      const inner = await super.kv(bucket, options);
      if (bucket !== BUCKETS.leases) return inner;
      this.claims ??= new HeldBucket(inner);
      return this.claims;
    }
  }

  it('acquire race - PresenceNode.stop while a claim of its step is unanswered hands that shard over as well: no claim left behind', async () => {
    const shared = new EmbeddedTransport();
    transports.push(shared);
    const link = new HeldLink(shared);
    const node = new PresenceNode({
      transport: link,
      nodeId: 'node-a',
      host: '127.0.0.1',
      port: 0,
      log: createLogger({ level: 'silent' }),
      cluster: { minView: 1, maxMovesPerTick: 4096 },
    });
    let stopped = false;
    stoppers.push(async () => {
      if (!stopped) await node.stop();
    });
    // The hold is set before the node's first step, which claims every shard at once.
    const claims = await link.kv(BUCKETS.leases);
    const hold = (claims as HeldBucket).hold('claim', 'shard.0', { committed: true });
    let draining!: () => void;
    const drainStarted = new Promise<void>((resolve) => (draining = resolve));
    const releaseAll = ShardLeases.prototype.releaseAll;
    vi.spyOn(ShardLeases.prototype, 'releaseAll').mockImplementation(function (this: ShardLeases) {
      draining();
      return releaseAll.call(this);
    });
    await Promise.all([node.start(), hold.reached]);
    const stopping = node.stop();
    stopped = true;
    await drainStarted;
    await flush();
    hold.release();
    await stopping;
    await hold.answered;
    await flush();
    await flush();
    expect(await (await shared.kv(BUCKETS.leases)).keys()).toEqual([]);
  });
});
