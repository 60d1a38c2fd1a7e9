import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decode } from '../../src/cluster/codec.js';
import { DEFAULT_MEMBERSHIP_TIMING, Membership } from '../../src/cluster/membership.js';
import { desiredOwner } from '../../src/cluster/rendezvous.js';
import { ShardLeases, type ShardServer } from '../../src/cluster/shardLeases.js';
import { BUCKETS } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import type { KvBucket } from '../../src/cluster/transport/types.js';
import { LinkTransport, flush, makeClock, type ManualClock } from '../support/linkTransport.js';

const { renewMs, deadAfterMs, fenceAfterMs, probeAfterMs, probeConfirmMs } = DEFAULT_MEMBERSHIP_TIMING;
const SHARDS = 64;
const ALL_SHARDS = Array.from({ length: SHARDS }, (_, shard) => shard);
const log = pino({ level: 'silent' });

interface ServerCall {
  op: 'acquire' | 'release' | 'drop';
  shard: number;
  at: number;
}

/** Records what the leases ask of it and which shards it serves right now. */
class FakeServer implements ShardServer {
  readonly serving = new Set<number>();
  readonly calls: ServerCall[] = [];
  constructor(private readonly clock: ManualClock, private readonly onAcquire: (shard: number) => void) {}
  async acquire(shard: number): Promise<void> {
    this.calls.push({ op: 'acquire', shard, at: this.clock.now() });
    this.onAcquire(shard);
    this.serving.add(shard);
  }
  async release(shard: number): Promise<void> {
    this.calls.push({ op: 'release', shard, at: this.clock.now() });
    this.serving.delete(shard);
  }
  drop(shard: number): void {
    this.calls.push({ op: 'drop', shard, at: this.clock.now() });
    this.serving.delete(shard);
  }
  callsOf(op: ServerCall['op'], since = 0): ServerCall[] {
    return this.calls.slice(since).filter((c) => c.op === op);
  }
}

interface TestNode {
  id: string;
  incarnation: string;
  membership: Membership;
  leases: ShardLeases;
  server: FakeServer;
  /** Its connection to the shared transport: heartbeats and the `leases` bucket go through it. */
  link: LinkTransport;
  /** A killed process serves nothing: left out of the double-serving checks. */
  dead: boolean;
}

interface ClusterOptions {
  minView?: number;
  maxMovesPerTick?: number;
}

let transports: EmbeddedTransport[] = [];
let running: TestNode[] = [];

afterEach(async () => {
  for (const node of running) {
    node.leases.stop();
    node.membership.stop();
  }
  running = [];
  for (const transport of transports) await transport.close();
  transports = [];
});

/** Several simulated nodes sharing ONE embedded transport (so one heartbeat subject and one `leases` bucket) and one manual clock. */
class Cluster {
  readonly clock: ManualClock = makeClock();
  readonly nodes = new Map<string, TestNode>();
  /** Every moment a shard was found served by two nodes at once. */
  readonly violations: string[] = [];

  private constructor(
    readonly transport: EmbeddedTransport,
    /** The shared bucket itself, not through any node's link. */
    readonly leasesBucket: KvBucket,
    private readonly options: Required<ClusterOptions>,
  ) {}

  static async create(ids: string[], options: ClusterOptions = {}): Promise<Cluster> {
    const transport = new EmbeddedTransport();
    transports.push(transport);
    const cluster = new Cluster(transport, await transport.kv(BUCKETS.leases), {
      minView: options.minView ?? 1,
      maxMovesPerTick: options.maxMovesPerTick ?? SHARDS,
    });
    for (const id of ids) await cluster.add(id);
    await flush();
    return cluster;
  }

  node(id: string): TestNode {
    const node = this.nodes.get(id);
    if (!node) throw new Error(`no node ${id}`);
    return node;
  }

  get live(): string[] {
    return [...this.nodes.values()].filter((n) => !n.dead).map((n) => n.id).sort();
  }

  /** Starts a node; `prepare` sets up its link (lost watch events, slow reads) before anything goes through it. */
  async add(id: string, incarnation = `${id}-1`, prepare?: (link: LinkTransport) => void): Promise<TestNode> {
    const link = new LinkTransport(this.transport);
    prepare?.(link);
    const membership = new Membership(
      link,
      { nodeId: id, incarnation, startedAt: this.clock.now(), shards: 0, actors: 0 },
      this.clock,
      DEFAULT_MEMBERSHIP_TIMING,
    );
    const server = new FakeServer(this.clock, (shard) => this.checkAcquire(id, shard));
    const leases = new ShardLeases(await link.kv(BUCKETS.leases), membership, incarnation, server, {
      shardCount: SHARDS,
      minView: this.options.minView,
      maxMovesPerTick: this.options.maxMovesPerTick,
      log,
    });
    await membership.start();
    await leases.start();
    const node: TestNode = { id, incarnation, membership, leases, server, link, dead: false };
    this.nodes.set(id, node);
    running.push(node);
    return node;
  }

  /** A crash: the process stops heartbeating, ticking and watching. */
  kill(id: string): void {
    const node = this.node(id);
    node.leases.stop();
    node.membership.stop();
    node.dead = true;
  }

  /** What a node does every `renewMs` (as in node.ts): probe silent members, publish its heartbeat, then one leases step. */
  async tickNode(id: string): Promise<void> {
    const node = this.node(id);
    node.membership.probeSilent();
    await node.membership.renew({ shards: node.leases.heldShards.length }).catch(() => undefined);
    await node.leases.tick();
  }

  /**
   * Advances the clock, ticks `ids` concurrently, lets heartbeats and watch events land, then
   * checks for double serving. Every heartbeat of the round is published before any step runs,
   * so each step sees the heartbeats of all of `ids` (its own echo included).
   */
  async round(ids: string[] = this.live, advanceMs = renewMs): Promise<void> {
    this.clock.t += advanceMs;
    await Promise.all(ids.map((id) => this.tickNode(id)));
    await flush();
    this.checkServing();
  }

  /** Rounds of `ids` until the clock has moved `ms` on from now. */
  async roundsFor(ms: number, ids: string[] = this.live): Promise<void> {
    const from = this.clock.t;
    while (this.clock.t - from < ms) await this.round(ids);
  }

  /** Every one of `ids` publishes a heartbeat, with no step: as happens within `renewMs` of a start. */
  async announce(ids: string[] = this.live): Promise<void> {
    await Promise.all(ids.map((id) => this.node(id).membership.renew().catch(() => undefined)));
    await flush();
  }

  async settle(ids: string[] = this.live, rounds = 6): Promise<void> {
    for (let i = 0; i < rounds; i++) await this.round(ids);
  }

  /** Node ids (not dead) that serve `shard`, by the fake server and by `isServing`. */
  servers(shard: number): string[] {
    return [...this.nodes.values()].filter((n) => !n.dead && n.server.serving.has(shard)).map((n) => n.id);
  }

  checkServing(): void {
    for (const shard of ALL_SHARDS) {
      const byServer = this.servers(shard);
      const byLease = [...this.nodes.values()].filter((n) => !n.dead && n.leases.isServing(shard)).map((n) => n.id);
      if (byServer.length > 1) this.violations.push(`t=${this.clock.t} shard ${shard} served by ${byServer.join(', ')}`);
      if (byLease.length > 1) this.violations.push(`t=${this.clock.t} shard ${shard} isServing on ${byLease.join(', ')}`);
    }
  }

  /** At the moment a node starts serving a shard, nobody else may serve it. */
  private checkAcquire(id: string, shard: number): void {
    for (const other of this.nodes.values()) {
      if (other.id === id || other.dead) continue;
      if (other.server.serving.has(shard) || other.leases.isServing(shard)) {
        this.violations.push(`t=${this.clock.t} ${id} acquired shard ${shard} while ${other.id} still serves it`);
      }
    }
  }

  /** The claim stored in the shared `leases` bucket. */
  async claimHolder(shard: number): Promise<string | undefined> {
    const entry = await this.leasesBucket.get(`shard.${shard}`);
    return entry ? decode<{ nodeId: string }>(entry.value).nodeId : undefined;
  }

  /** Every shard served by exactly one of `ids`: the rendezvous owner over `ids`, which is also each node's view. */
  async expectStable(ids: string[]): Promise<void> {
    const view = [...ids].sort();
    for (const id of view) expect(this.node(id).membership.view(), `view of ${id}`).toEqual(view);
    for (const shard of ALL_SHARDS) {
      const owner = desiredOwner(shard, view)!;
      expect(this.servers(shard), `servers of shard ${shard}`).toEqual([owner]);
      const holders = view.filter((id) => this.node(id).leases.heldShards.includes(shard));
      expect(holders, `lease holders of shard ${shard}`).toEqual([owner]);
      expect(await this.claimHolder(shard), `stored claim of shard ${shard}`).toBe(owner);
    }
  }
}

const THREE = ['node-a', 'node-b', 'node-c'];

describe('shard leases', () => {
  it('leases - three nodes ticking until stable hold every shard exactly once', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    for (const shard of ALL_SHARDS) expect(cluster.servers(shard), `shard ${shard}`).toHaveLength(1);
    const total = THREE.reduce((sum, id) => sum + cluster.node(id).leases.heldShards.length, 0);
    expect(total).toBe(SHARDS);
  });

  it('leases - once stable every shard is held by its rendezvous owner over the view', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    await cluster.expectStable(THREE);
  });

  it('leases - once stable every node agrees on the owner of every shard', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const reference = cluster.node('node-a').leases.owners();
    expect(reference.size).toBe(SHARDS);
    for (const id of THREE) expect(cluster.node(id).leases.owners(), id).toEqual(reference);
  });

  it('leases - no shard is served by two nodes at once while nodes join one after another', async () => {
    const cluster = await Cluster.create(['node-a'], { maxMovesPerTick: 8 });
    await cluster.settle(['node-a'], 10);
    expect(cluster.node('node-a').leases.heldShards).toHaveLength(SHARDS);
    await cluster.add('node-b');
    await cluster.settle(undefined, 10);
    await cluster.add('node-c');
    await cluster.settle(undefined, 10);
    expect(cluster.violations).toEqual([]);
    await cluster.expectStable(THREE);
  });

  it('leases - a stable cluster moves nothing on further ticks', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const before = THREE.map((id) => cluster.node(id).server.calls.length);
    await cluster.settle(THREE, 5);
    expect(THREE.map((id) => cluster.node(id).server.calls.length)).toEqual(before);
  });

  it("leases - survivors do not take a frozen node's shards before deadAfterMs (its connection is up: probes go unanswered)", async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const a = cluster.node('node-a');
    const victim = a.leases.heldShards;
    a.link.down = true;
    const frozenAt = cluster.clock.t;
    while (cluster.clock.t + renewMs - frozenAt < deadAfterMs) await cluster.round(['node-b', 'node-c']);
    for (const shard of victim) expect(cluster.servers(shard).filter((id) => id !== 'node-a'), `shard ${shard}`).toEqual([]);
  });

  it("leases - a killed node's shards are taken over once a probe finds nobody listening, long before deadAfterMs", async () => {
    const cluster = await Cluster.create(THREE, { maxMovesPerTick: 4 });
    await cluster.settle(THREE, 12);
    const victim = cluster.node('node-a').leases.heldShards;
    expect(victim.length).toBeGreaterThan(4);
    cluster.kill('node-a');
    const killedAt = cluster.clock.t;
    // Silent for probeAfterMs, asked twice, found gone; then one step takes all its shards, past the budget of moves.
    await cluster.roundsFor(probeAfterMs + probeConfirmMs + 2 * renewMs, ['node-b', 'node-c']);
    expect(cluster.clock.t - killedAt).toBeLessThan(deadAfterMs);
    for (const shard of victim) {
      expect(cluster.servers(shard), `shard ${shard}`).toEqual([desiredOwner(shard, ['node-b', 'node-c'])]);
    }
    expect(cluster.violations).toEqual([]);
  });

  it("leases - onClaimChange listeners hear when another node claims the shard, and no more once they stop", async () => {
    const cluster = await Cluster.create(['node-b']);
    const b = cluster.node('node-b');
    // Shards node-a will own: node-b hears node-a claim them, then (after node-a dies) claims them itself.
    const [watched, unwatched] = ALL_SHARDS.filter((shard) => desiredOwner(shard, ['node-a', 'node-b']) === 'node-a');
    const heard: number[] = [];
    const stop = b.leases.onClaimChange(watched!, () => heard.push(watched!));
    b.leases.onClaimChange(unwatched!, () => heard.push(unwatched!));
    await cluster.add('node-a');
    await cluster.settle(['node-a', 'node-b']);
    expect(await cluster.claimHolder(watched!)).toBe('node-a');
    expect(heard).toContain(watched);
    stop();
    const count = heard.filter((shard) => shard === watched).length;
    const countOther = heard.filter((shard) => shard === unwatched).length;
    cluster.kill('node-a');
    await cluster.settle(['node-b'], deadAfterMs / renewMs + 2);
    expect(await cluster.claimHolder(watched!)).toBe('node-b');
    expect(heard.filter((shard) => shard === watched)).toHaveLength(count);
    expect(heard.filter((shard) => shard === unwatched).length).toBeGreaterThan(countOther);
  });

  it('leases - a node cut off (its connection gone) past the probes loses its shards, and drops them as soon as it hears the new claims', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const a = cluster.node('node-a');
    const held = a.leases.heldShards;
    const mark = a.server.calls.length;
    a.link.loseConnection();
    // It does not step meanwhile (a step of its own would fence it once its lease lapsed).
    await cluster.roundsFor(probeAfterMs + probeConfirmMs + 2 * renewMs, ['node-b', 'node-c']);
    for (const shard of held) expect(await cluster.claimHolder(shard), `claim of shard ${shard}`).not.toBe('node-a');
    // Cut off, it could neither receive a command for them nor write them; back, it hears
    // the claims of the others before its next step and drops every one, releasing none.
    a.link.down = false;
    await flush();
    await flush();
    expect(a.leases.heldShards).toEqual([]);
    expect(a.server.callsOf('drop', mark).map((c) => c.shard).sort((x, y) => x - y)).toEqual(held);
    expect(a.server.callsOf('release', mark)).toEqual([]);
    const overlaps = cluster.violations.length;
    await cluster.settle(THREE, 8);
    await cluster.expectStable(THREE);
    expect(cluster.violations.slice(overlaps)).toEqual([]);
  });

  it('leases - a node that cannot renew for fenceAfterMs drops every shard on its next tick, releasing none', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const a = cluster.node('node-a');
    const held = a.leases.heldShards;
    expect(held.length).toBeGreaterThan(0);
    const mark = a.server.calls.length;
    a.link.down = true;
    const frozenAt = cluster.clock.t;
    // Frozen: no tick at all while the others go on.
    while (cluster.clock.t + renewMs - frozenAt <= fenceAfterMs) await cluster.round(['node-b', 'node-c']);
    expect(a.server.callsOf('drop', mark)).toEqual([]);
    // It ticks again; its heartbeat goes nowhere, so no echo has come back for fenceAfterMs.
    await cluster.round(THREE);
    expect(cluster.clock.t - frozenAt).toBeGreaterThan(fenceAfterMs);
    expect(a.server.callsOf('drop', mark).map((c) => c.shard).sort((x, y) => x - y)).toEqual(held);
    expect(a.server.callsOf('release', mark)).toEqual([]);
    expect([...a.server.serving]).toEqual([]);
    expect(a.leases.heldShards).toEqual([]);
  });

  it('leases - a fenced node has stopped serving before any other node acquires its shards', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const a = cluster.node('node-a');
    const held = a.leases.heldShards;
    const marks = new Map(THREE.map((id) => [id, cluster.node(id).server.calls.length]));
    a.link.down = true;
    const frozenAt = cluster.clock.t;
    while (cluster.clock.t + renewMs - frozenAt <= fenceAfterMs) await cluster.round(['node-b', 'node-c']);
    // Still cut off, it ticks again (its heartbeats go nowhere) while the others take over.
    await cluster.settle(THREE, deadAfterMs / renewMs + 2);
    const takeovers = ['node-b', 'node-c']
      .flatMap((id) => cluster.node(id).server.callsOf('acquire', marks.get(id)))
      .filter((c) => held.includes(c.shard));
    expect(takeovers.map((c) => c.shard).sort((x, y) => x - y)).toEqual(held);
    const drops = new Map(a.server.callsOf('drop', marks.get('node-a')).map((c) => [c.shard, c.at]));
    for (const takeover of takeovers) {
      expect(drops.get(takeover.shard), `drop time of shard ${takeover.shard}`).toBeLessThan(takeover.at);
    }
    expect(cluster.violations).toEqual([]);
  });

  it('leases - a node that sees another node claim a shard it holds drops it without waiting for its own tick', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const a = cluster.node('node-a');
    const held = a.leases.heldShards;
    const mark = a.server.calls.length;
    // node-a stalls: it neither heartbeats nor ticks again (so it never fences itself), but its
    // connection still delivers the bucket's watch events.
    await cluster.settle(['node-b', 'node-c'], deadAfterMs / renewMs + 2);
    expect(a.server.callsOf('drop', mark).map((c) => c.shard).sort((x, y) => x - y)).toEqual(held);
    expect(a.server.callsOf('release', mark)).toEqual([]);
    expect([...a.server.serving]).toEqual([]);
    expect(a.leases.heldShards).toEqual([]);
  });

  it('leases - a fenced node rejoins cleanly and shards rebalance with no double ownership', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const a = cluster.node('node-a');
    const held = a.leases.heldShards;
    a.link.down = true;
    await cluster.settle(THREE, deadAfterMs / renewMs + 2);
    await cluster.expectStable(['node-b', 'node-c']);
    a.link.down = false;
    await cluster.settle(THREE, 6);
    await cluster.expectStable(THREE);
    expect(a.leases.heldShards).toEqual(held);
    expect(cluster.violations).toEqual([]);
  });

  it('leases - a fenced node that recovers before deadAfterMs takes its own shards back', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const a = cluster.node('node-a');
    const held = a.leases.heldShards;
    const mark = a.server.calls.length;
    a.link.down = true;
    const frozenAt = cluster.clock.t;
    await cluster.roundsFor(fenceAfterMs, THREE);
    expect(a.server.callsOf('drop', mark)).toHaveLength(held.length);
    a.link.down = false;
    await cluster.settle(THREE, 3);
    expect(cluster.clock.t - frozenAt).toBeLessThan(deadAfterMs + 3 * renewMs);
    await cluster.expectStable(THREE);
    expect(cluster.violations).toEqual([]);
  });

  it('leases - a fenced node that rejoins while another node joins leaves no shard unclaimed', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const a = cluster.node('node-a');
    const movingToD = a.leases.heldShards.filter((s) => desiredOwner(s, [...THREE, 'node-d']) === 'node-d');
    expect(movingToD.length).toBeGreaterThan(0);
    a.link.down = true;
    await cluster.roundsFor(fenceAfterMs, THREE);
    expect(a.leases.heldShards).toEqual([]);
    // While node-a is fenced (and before anyone judges it dead) node-d joins, then node-a's link comes back.
    await cluster.add('node-d');
    a.link.down = false;
    await cluster.settle(undefined, 10);
    for (const shard of movingToD) {
      expect(cluster.servers(shard), `shard ${shard} (stored claim: ${await cluster.claimHolder(shard)})`).toEqual(['node-d']);
    }
    await cluster.expectStable([...THREE, 'node-d']);
  });

  it("leases - a node restarted under a new incarnation takes its shards back without waiting for deadAfterMs", async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const held = cluster.node('node-a').leases.heldShards;
    cluster.kill('node-a');
    const restartedAt = cluster.clock.t;
    const reborn = await cluster.add('node-a', 'node-a-2');
    await flush();
    await cluster.settle(THREE, 2);
    expect(cluster.clock.t - restartedAt).toBeLessThan(deadAfterMs);
    expect(reborn.leases.heldShards).toEqual(held);
    await cluster.expectStable(THREE);
    expect(cluster.violations).toEqual([]);
  });

  it('leases - a node that still publishes but cannot hear its own heartbeat drops its shards and nobody serves them twice', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const a = cluster.node('node-a');
    const held = a.leases.heldShards;
    expect(held.length).toBeGreaterThan(0);
    const marks = new Map(THREE.map((id) => [id, cluster.node(id).server.calls.length]));
    a.link.deaf = true;
    const deafAt = cluster.clock.t;
    let sawFenced = false;
    for (let round = 0; round < (2 * deadAfterMs) / renewMs; round++) {
      await cluster.round(THREE);
      // What keeps the invariant: nobody takes the claim of a node it still hears, and this one is heard.
      for (const id of ['node-b', 'node-c']) {
        const other = cluster.node(id);
        if (!other.membership.isAlive('node-a', a.incarnation)) continue;
        const taken = other.server.callsOf('acquire', marks.get(id)).filter((c) => held.includes(c.shard));
        expect(taken, `${id} took shards of node-a while it hears it, t=${cluster.clock.t}`).toEqual([]);
      }
      if (cluster.clock.t - deafAt === fenceAfterMs + renewMs) {
        // Fenced by its own missing echo while both others still count it alive.
        expect(a.membership.isLive).toBe(false);
        expect(cluster.node('node-b').membership.isAlive('node-a', a.incarnation)).toBe(true);
        expect(cluster.node('node-c').membership.isAlive('node-a', a.incarnation)).toBe(true);
        sawFenced = true;
      }
    }
    expect(sawFenced).toBe(true);
    expect(a.membership.isLive).toBe(false);
    expect(a.server.callsOf('drop', marks.get('node-a')).map((c) => c.shard).sort((x, y) => x - y)).toEqual(held);
    expect(a.server.callsOf('release', marks.get('node-a'))).toEqual([]);
    expect(a.server.callsOf('acquire', marks.get('node-a'))).toEqual([]);
    expect([...a.server.serving]).toEqual([]);
    expect(cluster.violations).toEqual([]);
    // Once it hears itself again its shards come back to it (it re-takes its own claims by
    // compare-and-set, or the others hand them back) and nothing is ever served twice.
    a.link.deaf = false;
    await cluster.settle(THREE, 6);
    await cluster.expectStable(THREE);
    expect(a.leases.heldShards).toEqual(held);
    expect(cluster.violations).toEqual([]);
  });

  // It marks its heartbeats fenced, so the others stop counting them as renewals.
  it('leases - the shards of a node that publishes but cannot hear itself are served again while it stays deaf', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    cluster.node('node-a').link.deaf = true;
    await cluster.settle(THREE, (2 * deadAfterMs) / renewMs + 6);
    for (const shard of ALL_SHARDS) expect(cluster.servers(shard), `servers of shard ${shard}`).toHaveLength(1);
    expect(cluster.violations).toEqual([]);
  });

  it('leases - a node that just started takes over no claim of a live node it has not heard from yet', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const before = new Map(THREE.map((id) => [id, cluster.node(id).leases.heldShards]));
    await cluster.add('node-d');
    // As node.ts does: the first step runs within renewMs / 4 of the start, before the others'
    // next heartbeats, so node-d has heard nobody yet. They are all live and serving.
    await cluster.round(['node-d'], renewMs / 4);
    expect(cluster.violations).toEqual([]);
    for (const id of THREE) expect(cluster.node(id).leases.heldShards, id).toEqual(before.get(id));
    await cluster.settle(undefined, 10);
    await cluster.expectStable([...THREE, 'node-d']);
    expect(cluster.violations).toEqual([]);
  });

  it('leases - a node whose link comes back takes over no claim of a live node before it hears it again', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const a = cluster.node('node-a');
    const held = a.leases.heldShards;
    a.link.down = true;
    await cluster.settle(THREE, deadAfterMs / renewMs + 2);
    await cluster.expectStable(['node-b', 'node-c']);
    const before = new Map(['node-b', 'node-c'].map((id) => [id, cluster.node(id).leases.heldShards]));
    a.link.down = false;
    // Its own heartbeat timer and then its step fire before the others' next heartbeats: it is
    // live again, but has not heard node-b or node-c for longer than deadAfterMs.
    await cluster.round(['node-a'], renewMs / 4);
    expect(a.membership.isLive).toBe(true);
    expect(cluster.violations).toEqual([]);
    for (const id of ['node-b', 'node-c']) expect(cluster.node(id).leases.heldShards, id).toEqual(before.get(id));
    await cluster.settle(THREE, 6);
    await cluster.expectStable(THREE);
    expect(a.leases.heldShards).toEqual(held);
    expect(cluster.violations).toEqual([]);
  });

  it('leases - releaseAll hands every shard over through release, not drop', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const a = cluster.node('node-a');
    const held = a.leases.heldShards;
    const mark = a.server.calls.length;
    await a.leases.releaseAll();
    expect(a.server.callsOf('release', mark).map((c) => c.shard).sort((x, y) => x - y)).toEqual(held);
    expect(a.server.callsOf('drop', mark)).toEqual([]);
    expect(a.leases.heldShards).toEqual([]);
    for (const shard of held) expect(await cluster.claimHolder(shard), `claim of shard ${shard}`).toBeUndefined();
  });

  it('leases - after releaseAll and leave the others claim the shards on their next tick, without waiting for deadAfterMs', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const a = cluster.node('node-a');
    const held = a.leases.heldShards;
    await a.leases.releaseAll();
    await a.membership.leave();
    cluster.kill('node-a');
    await flush();
    const leftAt = cluster.clock.t;
    await cluster.round(['node-b', 'node-c']);
    expect(cluster.clock.t - leftAt).toBeLessThan(deadAfterMs);
    for (const shard of held) {
      expect(cluster.servers(shard), `shard ${shard}`).toEqual([desiredOwner(shard, ['node-b', 'node-c'])]);
    }
    await cluster.expectStable(['node-b', 'node-c']);
    expect(cluster.violations).toEqual([]);
  });

  it('leases - with minView 2 a lone node claims nothing', async () => {
    const cluster = await Cluster.create(['node-a'], { minView: 2 });
    await cluster.settle(['node-a'], 5);
    const a = cluster.node('node-a');
    expect(a.server.calls).toEqual([]);
    expect(a.leases.heldShards).toEqual([]);
    expect(await cluster.leasesBucket.keys()).toEqual([]);
  });

  it('leases - with minView 2 shards are claimed once a second node appears', async () => {
    const cluster = await Cluster.create(['node-a'], { minView: 2 });
    await cluster.settle(['node-a'], 3);
    await cluster.add('node-b');
    await cluster.settle(['node-a', 'node-b'], 3);
    await cluster.expectStable(['node-a', 'node-b']);
  });

  it('leases - with maxMovesPerTick 8 a lone node takes exactly 8 shards on its first tick', async () => {
    const cluster = await Cluster.create(['node-a'], { maxMovesPerTick: 8 });
    await cluster.round(['node-a']);
    expect(cluster.node('node-a').leases.heldShards).toHaveLength(8);
    expect(cluster.node('node-a').server.callsOf('acquire')).toHaveLength(8);
  });

  it('leases - with maxMovesPerTick 8 no node takes more than 8 shards in any tick', async () => {
    const cluster = await Cluster.create(THREE, { maxMovesPerTick: 8 });
    const marks = new Map(THREE.map((id) => [id, 0]));
    for (let round = 0; round < 8; round++) {
      await cluster.round(THREE);
      for (const id of THREE) {
        const server = cluster.node(id).server;
        expect(server.callsOf('acquire', marks.get(id)).length, `${id} in round ${round}`).toBeLessThanOrEqual(8);
        marks.set(id, server.calls.length);
      }
    }
    await cluster.expectStable(THREE);
  });

  /** Two nodes that have heard each other, after one tick at once with stale views: each believed it was alone, so both wanted every shard. */
  async function afterAClaimRace() {
    const cluster = await Cluster.create(['node-b', 'node-c']);
    const b = cluster.node('node-b');
    const c = cluster.node('node-c');
    // They have heard each other (as within renewMs of starting); only their views are stale.
    await cluster.announce();
    vi.spyOn(b.membership, 'view').mockReturnValue(['node-b']);
    vi.spyOn(c.membership, 'view').mockReturnValue(['node-c']);
    await Promise.all([c.leases.tick(), b.leases.tick()]);
    await flush();
    return { cluster, b, c };
  }

  it('leases - two nodes racing for the same free shards leave exactly one holder of each', async () => {
    const { cluster, b, c } = await afterAClaimRace();
    for (const shard of ALL_SHARDS) {
      const holders = ['node-b', 'node-c'].filter((id) => cluster.node(id).leases.heldShards.includes(shard));
      expect(holders, `lease holders of shard ${shard}`).toHaveLength(1);
      expect(cluster.servers(shard), `servers of shard ${shard}`).toEqual(holders);
      expect(await cluster.claimHolder(shard)).toBe(holders[0]);
    }
    expect(b.server.callsOf('acquire').length + c.server.callsOf('acquire').length).toBe(SHARDS);
  });

  it('leases - the loser of a claim race does not take the shard while the winner is alive', async () => {
    const { b, c } = await afterAClaimRace();
    const snapshot = { b: b.leases.heldShards, c: c.leases.heldShards };
    // More ticks with the same stale views: claims of a live node are not taken over.
    for (let i = 0; i < 3; i++) {
      await Promise.all([b.leases.tick(), c.leases.tick()]);
      await flush();
    }
    expect({ b: b.leases.heldShards, c: c.leases.heldShards }).toEqual(snapshot);
    expect(b.server.callsOf('drop').length + c.server.callsOf('drop').length).toBe(0);
  });

  it('leases - a claim handed over while a joining node reads the claims is not brought back by that read', async () => {
    const cluster = await Cluster.create(['node-b', 'node-c']);
    await cluster.settle();
    const shard = ALL_SHARDS.find((s) => desiredOwner(s, THREE) === 'node-a')!;
    const holder = cluster.node((await cluster.claimHolder(shard))!);
    let handedOver = false;
    await cluster.add('node-a', undefined, (link) => {
      // The holder hands the shard over after node-a's read of its claim, before the answer lands.
      link.beforeGetAnswers = async (key) => {
        if (key !== `shard.${shard}` || handedOver) return;
        handedOver = true;
        await holder.leases.releaseAll();
        await flush();
        await flush();
      };
    });
    expect(handedOver).toBe(true);
    expect(cluster.node('node-a').leases.owners().has(shard)).toBe(false);
    await cluster.settle(THREE);
    await cluster.expectStable(THREE);
    expect(cluster.violations).toEqual([]);
  });

  it("leases - a node whose watch lost a hand-over's delete reads the claim again and takes the shard", async () => {
    const cluster = await Cluster.create(['node-b', 'node-c']);
    await cluster.settle();
    const shard = ALL_SHARDS.find((s) => desiredOwner(s, THREE) === 'node-a')!;
    await cluster.add('node-a', undefined, (link) => {
      link.loseWatchEvent = (event) => event.op === 'delete' && event.key === `shard.${shard}`;
    });
    await cluster.settle(THREE);
    // Its claims say the old holder, alive, still has it; the bucket says nobody does.
    expect(cluster.servers(shard)).toEqual([]);
    expect(await cluster.claimHolder(shard)).toBeUndefined();
    await cluster.settle(THREE, 25);
    await cluster.expectStable(THREE);
    expect(cluster.violations).toEqual([]);
  });

  it("leases - a node whose watch lost the takeover of a dead node's shard, not its own, reads the claim again and names the new holder", async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const survivors = ['node-a', 'node-b'];
    const shard = ALL_SHARDS.find((s) => desiredOwner(s, THREE) === 'node-c' && desiredOwner(s, survivors) === 'node-b')!;
    const a = cluster.node('node-a');
    a.link.loseWatchEvent = (event) => (event.op === 'delete' ? event.key : event.entry.key) === `shard.${shard}`;
    cluster.kill('node-c');
    await cluster.roundsFor(probeAfterMs + probeConfirmMs + 2 * renewMs, survivors);
    expect(await cluster.claimHolder(shard)).toBe('node-b');
    // Its view names the dead holder: its requests for the shard would wait on a claim that never changes.
    expect(a.leases.claimOf(shard)?.nodeId).toBe('node-c');
    await cluster.settle(survivors, 25);
    expect(a.leases.claimOf(shard)?.nodeId).toBe('node-b');
    await cluster.expectStable(survivors);
    expect(cluster.violations).toEqual([]);
  });

  it("leases - a node whose watch lost a claim made after a hand-over's delete, not its own, reads the claim again and names the holder", async () => {
    const cluster = await Cluster.create(['node-a', 'node-b']);
    await cluster.settle();
    const shard = ALL_SHARDS.find((s) => desiredOwner(s, ['node-a', 'node-b']) === 'node-b' && desiredOwner(s, THREE) === 'node-c')!;
    const a = cluster.node('node-a');
    a.link.loseWatchEvent = (event) => event.op === 'put' && event.entry.key === `shard.${shard}`;
    await cluster.add('node-c');
    await cluster.settle(THREE);
    expect(await cluster.claimHolder(shard)).toBe('node-c');
    // It heard node-b let the shard go, not node-c take it: nobody holds it, as far as it knows.
    expect(a.leases.claimOf(shard)).toBeUndefined();
    await cluster.settle(THREE, 25);
    expect(a.leases.claimOf(shard)?.nodeId).toBe('node-c');
    await cluster.expectStable(THREE);
    expect(cluster.violations).toEqual([]);
  });

  it('leases - a node whose claim changed unseen takes its shard back once the bucket refuses its revision', async () => {
    const cluster = await Cluster.create(THREE);
    await cluster.settle();
    const a = cluster.node('node-a');
    const shard = a.leases.heldShards[0]!;
    // Every change of this claim after node-a's own is lost to it: it remembers holding it.
    a.link.loseWatchEvent = (event) => (event.op === 'delete' ? event.key : event.entry.key) === `shard.${shard}`;
    a.link.down = true;
    await cluster.roundsFor(deadAfterMs + 3 * renewMs, THREE);
    expect(await cluster.claimHolder(shard)).not.toBe('node-a');
    a.link.down = false;
    await cluster.settle(THREE, 8);
    await cluster.expectStable(THREE);
    expect(cluster.violations).toEqual([]);
  });

  it('leases - after the bucket lost its last writes, revisions lower than those remembered, every node serves its shards again', async () => {
    const cluster = await Cluster.create([]);
    for (const id of THREE) await cluster.add(id, undefined, (link) => (link.revisionOffset = 1_000));
    await cluster.settle();
    await cluster.expectStable(THREE);
    // The whole NATS cluster goes down; what comes back numbers its writes from lower revisions.
    for (const id of THREE) cluster.node(id).link.down = true;
    await cluster.roundsFor(deadAfterMs, THREE);
    for (const id of THREE) expect(cluster.node(id).leases.heldShards, id).toEqual([]);
    for (const id of THREE) cluster.node(id).link.revisionOffset = 0;
    for (const id of THREE) cluster.node(id).link.down = false;
    await cluster.settle(THREE, 12);
    await cluster.expectStable(THREE);
    expect(cluster.violations).toEqual([]);
  });
});

