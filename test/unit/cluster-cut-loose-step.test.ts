import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decode } from '../../src/cluster/codec.js';
import { DEFAULT_MEMBERSHIP_TIMING, Membership } from '../../src/cluster/membership.js';
import { desiredOwner } from '../../src/cluster/rendezvous.js';
import { ShardLeases } from '../../src/cluster/shardLeases.js';
import { BUCKETS } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import { FakeServer, HeldBucket, type Hold } from '../support/leaseFixtures.js';
import { LinkTransport, flush, makeClock, type ManualClock } from '../support/linkTransport.js';

/**
 * An ownership step still running after its bound (STEP_BOUND_MS in shardLeases.ts, 20 s) is cut
 * loose and the next steps go on; its KV calls and its shard server's calls may still answer
 * afterwards. Each test holds one such call of a step, cuts the step loose (the bound is the one
 * real timer of a step: it is faked and advanced), lets later steps (or a drain) run, then lets
 * the held call answer, and checks that no shard is served twice, that each node serves exactly
 * the shards it holds the claims of, and that no claim is left by a node not serving it.
 * Membership runs on the manual clock; nothing sleeps.
 */

const { renewMs, fenceAfterMs } = DEFAULT_MEMBERSHIP_TIMING;
const STEP_BOUND_MS = 20_000;
const SHARDS = 16;
const ALL_SHARDS = Array.from({ length: SHARDS }, (_, shard) => shard);
const log = pino({ level: 'silent' });

interface TestNode {
  id: string;
  membership: Membership;
  leases: ShardLeases;
  server: FakeServer;
  bucket: HeldBucket;
  stopped: boolean;
}

let transports: EmbeddedTransport[] = [];
let stoppers: Array<() => void> = [];

afterEach(async () => {
  vi.useRealTimers();
  for (const stop of stoppers) stop();
  stoppers = [];
  for (const transport of transports) await transport.close();
  transports = [];
});

/** Nodes on one embedded transport (one heartbeat subject, one `leases` bucket) and one manual clock. */
class Cluster {
  readonly clock: ManualClock = makeClock();
  readonly transport = new EmbeddedTransport();
  readonly nodes = new Map<string, TestNode>();
  /** Every moment a node started serving a shard another node still served. */
  readonly violations: string[] = [];

  constructor() {
    transports.push(this.transport);
    // Only the step bound is a timer here: faked, so a test cuts a step loose when it says.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  }

  async add(id: string, incarnation = `${id}-1`): Promise<TestNode> {
    const link = new LinkTransport(this.transport);
    const membership = new Membership(link, { nodeId: id, incarnation, startedAt: this.clock.now(), shards: 0, actors: 0 }, this.clock, DEFAULT_MEMBERSHIP_TIMING);
    const server = new FakeServer((shard) => {
      // A node whose lease lapsed serves nothing (`ShardLeases.isServing`), though it still holds its shards.
      const others = this.live.filter((other) => other.id !== id && other.server.serving.has(shard) && other.membership.isLive);
      if (others.length) this.violations.push(`${id} acquired shard ${shard} while ${others.map((o) => o.id).join(', ')} served it`);
    });
    const bucket = new HeldBucket(await link.kv(BUCKETS.leases));
    const leases = new ShardLeases(bucket, membership, incarnation, server, { shardCount: SHARDS, minView: 1, maxMovesPerTick: SHARDS, log });
    await membership.start();
    await leases.start();
    stoppers.push(() => {
      leases.stop();
      membership.stop();
    });
    const node = { id, membership, leases, server, bucket, stopped: false };
    this.nodes.set(id, node);
    return node;
  }

  node(id: string): TestNode {
    return this.nodes.get(id)!;
  }

  get live(): TestNode[] {
    return [...this.nodes.values()].filter((n) => !n.stopped);
  }

  /** A clean stop, as node.ts does: hand every shard over, then leave. */
  async stop(id: string): Promise<void> {
    const node = this.node(id);
    await node.leases.releaseAll();
    node.leases.stop();
    await node.membership.leave();
    node.stopped = true;
    await flush();
  }

  /** The nodes of `ids` heartbeat (the clock moved on by `renewMs`), and hear each other. */
  async heartbeats(ids: string[]): Promise<void> {
    this.clock.t += renewMs;
    for (const id of ids) await this.node(id).membership.renew();
    await flush();
  }

  /** One ownership step of `id`, its watch events landed after. */
  async step(id: string): Promise<void> {
    await this.node(id).leases.tick();
    await flush();
  }

  /** Starts a step of `id` that will hang on `hold`, and cuts it loose once it does. */
  async cutLoose(id: string, hold: Hold): Promise<void> {
    const step = this.node(id).leases.tick();
    await hold.reached;
    await vi.advanceTimersByTimeAsync(STEP_BOUND_MS);
    await step;
    await flush();
  }

  /** Lets a held call answer and what its step does next run (its watch events landed). */
  async answer(hold: Hold): Promise<void> {
    hold.release();
    await hold.answered;
    await flush();
  }

  async claimHolder(shard: number): Promise<string | undefined> {
    const entry = await (await this.transport.kv(BUCKETS.leases)).get(`shard.${shard}`);
    return entry ? decode<{ nodeId: string }>(entry.value).nodeId : undefined;
  }

  /**
   * No shard served twice; every node serves exactly the shards it holds, each under its own
   * claim in the bucket; every claim in the bucket is of a node serving it.
   */
  async expectConsistent(): Promise<void> {
    expect(this.violations).toEqual([]);
    for (const shard of ALL_SHARDS) {
      const servers = this.live.filter((n) => n.server.serving.has(shard)).map((n) => n.id);
      expect(servers.length, `servers of shard ${shard}: ${servers.join(', ')}`).toBeLessThanOrEqual(1);
      const holder = await this.claimHolder(shard);
      if (holder) expect(servers, `servers of shard ${shard}, claimed by ${holder}`).toEqual([holder]);
      else expect(servers, `servers of shard ${shard}, claimed by nobody`).toEqual([]);
    }
    for (const node of this.live) {
      expect(node.leases.heldShards, `shards ${node.id} holds and serves`).toEqual([...node.server.serving].sort((x, y) => x - y));
    }
  }
}

/** A shard that is node-a's while it is alone and node-b's once node-b is in the view. */
const movingToB = ALL_SHARDS.find((s) => desiredOwner(s, ['node-a', 'node-b']) === 'node-b')!;

/**
 * node-a alone has stepped (it serves every shard), then node-b joined and both heard each
 * other: node-a's next step hands `movingToB` over.
 */
async function nodeBJoined(): Promise<{ cluster: Cluster; a: TestNode }> {
  const cluster = new Cluster();
  const a = await cluster.add('node-a');
  await cluster.heartbeats(['node-a']);
  await cluster.step('node-a');
  await cluster.add('node-b');
  await cluster.heartbeats(['node-a', 'node-b']);
  return { cluster, a };
}

/**
 * node-a alone: its first step's claim of `movingToB` is in the bucket but its answer is held
 * (`hold`), and the step is cut loose.
 */
async function claimOfMovingToBCutLoose(): Promise<{ cluster: Cluster; a: TestNode; hold: Hold }> {
  const cluster = new Cluster();
  const a = await cluster.add('node-a');
  const hold = a.bucket.hold('claim', `shard.${movingToB}`, { committed: true });
  await cluster.heartbeats(['node-a']);
  await cluster.cutLoose('node-a', hold);
  return { cluster, a, hold };
}

/**
 * node-a and node-b live, node-b's shards claimed; `shard` is one of node-a's, whose claim by
 * node-a's next step will be in the bucket with its answer held (`hold`).
 */
async function twoNodesWithAClaimOfAHeld(): Promise<{ cluster: Cluster; a: TestNode; b: TestNode; shard: number; hold: Hold }> {
  const cluster = new Cluster();
  const a = await cluster.add('node-a');
  const b = await cluster.add('node-b');
  const shard = ALL_SHARDS.find((s) => desiredOwner(s, ['node-a', 'node-b']) === 'node-a')!;
  await cluster.heartbeats(['node-a', 'node-b']);
  await cluster.step('node-b');
  const hold = a.bucket.hold('claim', `shard.${shard}`, { committed: true });
  return { cluster, a, b, shard, hold };
}

/**
 * node-a silent: node-b judges it dead and takes `shard` over by update. node-a is heard again,
 * and node-b hands the shard back, deleting its claim.
 */
async function takenOverAndHandedBack(cluster: Cluster, a: TestNode, b: TestNode, shard: number): Promise<void> {
  while (b.membership.isAlive('node-a', 'node-a-1')) await cluster.heartbeats(['node-b']);
  await cluster.step('node-b');
  expect(await cluster.claimHolder(shard)).toBe('node-b');
  await cluster.heartbeats(['node-a', 'node-b']);
  expect(a.membership.isLive).toBe(true);
  await cluster.step('node-b');
  expect(await cluster.claimHolder(shard)).toBeUndefined();
}

describe('an ownership step cut loose by its bound', () => {
  it('cut-loose step - a claim answered after a later step freed it (the shard now another node\'s) is not served: its new owner alone serves it', async () => {
    const { cluster, a, hold } = await claimOfMovingToBCutLoose();
    expect(await cluster.claimHolder(movingToB)).toBe('node-a');
    await cluster.add('node-b');
    await cluster.heartbeats(['node-a', 'node-b']);
    // node-a's next step finds its own claim, unserved, on a shard now node-b's: it frees it.
    await cluster.step('node-a');
    expect(await cluster.claimHolder(movingToB)).toBeUndefined();
    await cluster.answer(hold);
    await cluster.step('node-b');
    await cluster.step('node-a');
    await cluster.expectConsistent();
    expect(a.server.callsFor(movingToB)).toEqual([]);
    expect(await cluster.claimHolder(movingToB)).toBe('node-b');
  });

  it('cut-loose step - a claim answered after a later step took the shard again by update leaves that step\'s hold alone: the hand-over deletes the claim', async () => {
    const { cluster, a, hold } = await claimOfMovingToBCutLoose();
    // The next step finds its own claim, unserved, on a shard still its own: it takes it again.
    await cluster.heartbeats(['node-a']);
    await cluster.step('node-a');
    expect(a.server.callsFor(movingToB)).toEqual(['acquire']);
    await cluster.answer(hold);
    await cluster.expectConsistent();
    expect(a.server.callsFor(movingToB)).toEqual(['acquire']);
    // node-b joins: node-a hands the shard over, and its claim goes with it.
    const b = await cluster.add('node-b');
    await cluster.heartbeats(['node-a', 'node-b']);
    await cluster.step('node-a');
    expect(await cluster.claimHolder(movingToB)).toBeUndefined();
    await cluster.step('node-b');
    await cluster.expectConsistent();
    expect(b.server.callsFor(movingToB)).toEqual(['acquire']);
  });

  it('cut-loose step - a claim answered after a drain is not served by the node going away, nor left claimed', async () => {
    const { cluster, a, b, shard, hold } = await twoNodesWithAClaimOfAHeld();
    await cluster.cutLoose('node-a', hold);
    const draining = a.leases.releaseAll();
    await flush();
    await cluster.answer(hold);
    await draining;
    await flush();
    expect(a.server.serving.size).toBe(0);
    expect(a.leases.heldShards).toEqual([]);
    expect(await cluster.claimHolder(shard)).toBeUndefined();
    a.leases.stop();
    await a.membership.leave();
    a.stopped = true;
    await flush();
    await cluster.heartbeats(['node-b']);
    await cluster.step('node-b');
    await cluster.expectConsistent();
    expect(b.server.serving.size).toBe(SHARDS);
  });

  it('cut-loose step - a hand-over whose release answers after a fence and a later step took the shard again leaves that step\'s hold alone: no second server once the shard moves', async () => {
    const { cluster, a } = await nodeBJoined();
    // node-a hands the shard over to node-b; persisting its actors hangs past the bound.
    const release = a.server.holdRelease(movingToB);
    await cluster.cutLoose('node-a', release);
    // node-a stops hearing itself and fences; node-b still counts it alive.
    cluster.clock.t += fenceAfterMs;
    await cluster.node('node-b').membership.renew();
    await flush();
    await cluster.step('node-a');
    expect(a.leases.heldShards).toEqual([]);
    // node-b goes away; node-a, live again and alone, takes its own claim on the shard again.
    await cluster.stop('node-b');
    await cluster.heartbeats(['node-a']);
    await cluster.step('node-a');
    expect(a.leases.heldShards).toContain(movingToB);
    await cluster.answer(release);
    await cluster.expectConsistent();
    // node-b comes back: the shard moves to it, and node-a serves it no more.
    const b = await cluster.add('node-b', 'node-b-2');
    await cluster.heartbeats(['node-a', 'node-b']);
    await cluster.step('node-a');
    await cluster.step('node-b');
    await cluster.step('node-a');
    await cluster.expectConsistent();
    expect(b.server.serving.has(movingToB)).toBe(true);
  });

  it('cut-loose step - a claim delete answered after a later step took the shard again by update is refused: that step\'s claim stays', async () => {
    const { cluster, a } = await nodeBJoined();
    // node-a hands the shard over; the delete of its claim waits, not yet in the bucket.
    const hold = a.bucket.hold('delete', `shard.${movingToB}`, { committed: false });
    await cluster.cutLoose('node-a', hold);
    expect(a.server.serving.has(movingToB)).toBe(false);
    // node-b goes away before taking it: node-a, alone again, takes its own claim again by update.
    await cluster.stop('node-b');
    await cluster.heartbeats(['node-a']);
    await cluster.step('node-a');
    expect(a.server.serving.has(movingToB)).toBe(true);
    await cluster.answer(hold);
    await cluster.expectConsistent();
    expect(await cluster.claimHolder(movingToB)).toBe('node-a');
  });

  it('cut-loose step - a claim answered after a fence, once live again and before any new step, after another node took the shard over and handed it back, is not served: no shard served without a claim', async () => {
    // node-a's claim of the shard is in the bucket, its answer held; the step is cut loose.
    const { cluster, a, b, shard, hold } = await twoNodesWithAClaimOfAHeld();
    await cluster.cutLoose('node-a', hold);
    // node-a stops hearing itself and fences (no new step number); node-b keeps renewing.
    cluster.clock.t += fenceAfterMs;
    await b.membership.renew();
    await flush();
    await cluster.step('node-a');
    expect(a.leases.heldShards).toEqual([]);
    // node-b takes it over; node-a is heard again and node-b hands it back before node-a's next step.
    await takenOverAndHandedBack(cluster, a, b, shard);
    expect(a.leases.claimOf(shard)).toBeUndefined();
    // The claim of the step cut loose before the fence answers now.
    await cluster.answer(hold);
    expect(a.server.callsFor(shard)).toEqual([]);
    await cluster.expectConsistent();
    // node-a's next step claims the shard afresh and serves it under that claim.
    await cluster.step('node-a');
    await cluster.expectConsistent();
    expect(await cluster.claimHolder(shard)).toBe('node-a');
  });
});

describe('a step whose claim answers within its bound', () => {
  it('lapse within the bound - a claim answered once live again, after another node took the shard over and handed it back while this node was fenced, is not served: no shard served without a claim', async () => {
    // node-a's claim of the shard is in the bucket, its answer held; the step is not cut loose,
    // so no step of node-a runs meanwhile (nor a fence).
    const { cluster, a, b, shard, hold } = await twoNodesWithAClaimOfAHeld();
    const stepping = a.leases.tick();
    await hold.reached;
    // node-a stops hearing itself; node-b takes its claims over, then hands this one back.
    cluster.clock.t += fenceAfterMs;
    await takenOverAndHandedBack(cluster, a, b, shard);
    expect(cluster.clock.t).toBeLessThan(STEP_BOUND_MS);
    await cluster.answer(hold);
    await stepping;
    expect(a.server.callsFor(shard)).toEqual([]);
    await cluster.expectConsistent();
    await cluster.step('node-a');
    await cluster.expectConsistent();
    expect(await cluster.claimHolder(shard)).toBe('node-a');
  });
});
