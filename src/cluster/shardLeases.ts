import type { Logger } from '../log.js';
import { decode, encode } from './codec.js';
import type { Membership } from './membership.js';
import { desiredOwner } from './rendezvous.js';
import { KvConflictError } from './transport/errors.js';
import type { KvBucket, Subscription } from './transport/types.js';

/** What the shard leases drive: the part of the node that runs a shard's actors. */
export interface ShardServer {
  /**
   * Starts serving `shard` and restores its actors that have deadlines pending. `step`
   * numbers the ownership step that claimed it: every write of the shard's previous owner
   * came before that step began (it released before deleting its claim, or it is dead), so
   * the shards of one step may share one read of the `active` index made during the step.
   * Resolves once the shard is served, without waiting for the restores: the step awaits it.
   */
  acquire(shard: number, step: number): Promise<void>;
  /** Hands `shard` over: persists and stops its actors, then stops serving it. */
  release(shard: number): Promise<void>;
  /** Stops serving `shard` at once, discarding its actors unpersisted (this node is fenced). */
  drop(shard: number): void;
}

interface Claim {
  nodeId: string;
  incarnation: string;
  revision: number;
}

type ShardClaim = Claim & { shard: number };

export interface ShardLeasesOptions {
  shardCount: number;
  /** No shard is claimed while fewer nodes than this are in view (a node starting alone). */
  minView: number;
  /**
   * Acquisitions and releases started per tick: shards move gradually when a node joins or
   * leaves. The shards of a dead node are all taken in one tick: nobody serves them.
   */
  maxMovesPerTick: number;
  log: Logger;
}

const claimKey = (shard: number): string => `shard.${shard}`;
const shardOfKey = (key: string): number => Number(key.slice('shard.'.length));

/**
 * Shard ownership. Who *should* own a shard is rendezvous hashing over the live view;
 * who *does* is a claim in the `leases` bucket, taken with compare-and-set and valid
 * while its holder's membership lease is renewed. A claim of a dead holder is taken
 * over by compare-and-set on the revision seen, so two nodes cannot both take it;
 * a holder that cannot renew its membership fences itself before anyone may take over.
 */
/** Longer than any KV call may retry (12 s), so only a hung step is cut loose. */
const STEP_BOUND_MS = 20_000;
/**
 * Steps (of `renewMs`) a shard may wait for a live node to hand it over, or (a shard this
 * node should not own) for a live node to claim it, before its claim is read again: a paced
 * hand-over takes a few steps and a dead holder's shards are taken over within a step or two,
 * so only a claim this node knows wrongly (a watch event lost) waits this long.
 */
const RECHECK_AFTER_STEPS = 20;
/** Claims read again per step, at most: a wrong view costs a few reads, not a listing. */
const RECHECKS_PER_STEP = 16;

export class ShardLeases {
  private readonly claims = new Map<number, Claim>();
  /**
   * Revision of the delete that freed each shard's claim, while no claim is known since: a claim
   * of this node answered late must not be served if the watch showed it taken and freed meanwhile.
   */
  private readonly freedAt = new Map<number, number>();
  private readonly held = new Map<number, number>();
  /**
   * Shards the watch has told of while the start-up listing runs: the watch is newer, so
   * the listing's (earlier) read of them must not overwrite it. Revisions alone cannot tell:
   * they go back when a NATS cluster killed at once loses its last writes.
   */
  private reported: Set<number> | undefined;
  /**
   * Step since which each shard this node should own has been claimed by another live node,
   * or each shard it should not own has had no live holder as far as it knows.
   */
  private waitingSince = new Map<number, number>();
  private readonly claimListeners = new Map<number, Set<() => void>>();
  private watch: Subscription | undefined;
  private ticking = false;
  /** The ownership step in flight, if any: a drain waits for it before handing the shards over. */
  private running: Promise<void> | undefined;
  /** Set while `releaseAll` runs: no step starts meanwhile. */
  private releasingAll = false;
  /**
   * Numbers the ownership steps, for {@link ShardServer.acquire}; a drain takes a number too, so
   * a step cut loose by the bound can tell that a later step or a drain has decided since.
   */
  private steps = 0;
  /** Each shard's rendezvous owner in the last view: a view changes seldom, a step runs twice a second. */
  private desired: { view: string; of: Array<string | undefined> } | undefined;
  /** Shards dropped without a hand-over since start, for the metrics. */
  readonly losses = { fenced: 0, preempted: 0 };

  constructor(
    private readonly bucket: KvBucket,
    private readonly membership: Membership,
    private readonly incarnation: string,
    private readonly server: ShardServer,
    private readonly options: ShardLeasesOptions,
  ) {}

  async start(): Promise<void> {
    this.reported = new Set();
    this.watch = await this.bucket.watch((event) => {
      const shard = shardOfKey(event.op === 'put' ? event.entry.key : event.key);
      this.reported?.add(shard);
      if (event.op === 'put') this.observe(shard, decode<Omit<Claim, 'revision'>>(event.entry.value), event.entry.revision);
      else this.forget(shard, event.revision);
    });
    for (const key of await this.bucket.keys()) {
      const entry = await this.bucket.get(key);
      const shard = shardOfKey(key);
      if (entry && !this.reported.has(shard)) this.observe(shard, decode<Omit<Claim, 'revision'>>(entry.value), entry.revision);
    }
    this.reported = undefined;
  }

  /** True while this node holds the shard's claim and its own lease is fresh. */
  isServing(shard: number): boolean {
    return this.held.has(shard) && this.membership.isLive;
  }

  get heldShards(): number[] {
    return [...this.held.keys()].sort((a, b) => a - b);
  }

  /** The holder of a shard's claim as this node knows it, if any. */
  claimOf(shard: number): Readonly<Omit<Claim, 'revision'>> | undefined {
    return this.claims.get(shard);
  }

  /** Calls `listener` whenever this node learns that `shard`'s claim changed (taken, moved or freed). */
  onClaimChange(shard: number, listener: () => void): () => void {
    let listeners = this.claimListeners.get(shard);
    if (!listeners) this.claimListeners.set(shard, (listeners = new Set()));
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && this.claimListeners.get(shard) === listeners) this.claimListeners.delete(shard);
    };
  }

  /** The one place this node's picture of a claim changes, so every change reaches the listeners. */
  private setClaim(shard: number, claim: Claim | undefined, freedAt?: number): void {
    if (claim) {
      this.claims.set(shard, claim);
      this.freedAt.delete(shard);
    } else {
      this.claims.delete(shard);
      if (freedAt !== undefined) this.freedAt.set(shard, freedAt);
    }
    const listeners = this.claimListeners.get(shard);
    if (listeners) for (const listener of [...listeners]) listener();
  }

  /** Current claim holder of every claimed shard, for the cluster view. */
  owners(): Map<number, string> {
    return new Map([...this.claims].map(([shard, claim]) => [shard, claim.nodeId]));
  }

  /** One step of the ownership protocol; runs every membership renewal. */
  async tick(): Promise<void> {
    if (this.ticking || this.releasingAll) return;
    this.ticking = true;
    let timer: NodeJS.Timeout | undefined;
    // A step whose KV calls hang (a connection lost mid-listing) must not stop every later
    // step: past the bound the next steps go on. Its late writes are compare-and-set, and its late
    // answers are not acted on against what a later step decided (`acquire`, `handOver`).
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.options.log.error({ boundMs: STEP_BOUND_MS }, 'ownership step still running; the next steps go on');
        resolve();
      }, STEP_BOUND_MS);
      timer.unref?.();
    });
    const running = Promise.race([this.step(), bound]);
    this.running = running;
    try {
      await running;
    } finally {
      clearTimeout(timer);
      this.ticking = false;
      this.running = undefined;
    }
  }

  /** One step: fence, or release, free, and claim toward the rendezvous owners of the view. */
  private async step(): Promise<void> {
    if (!this.membership.isLive) return this.fence();
    const step = ++this.steps;
    const view = this.membership.view();
    if (view.length < this.options.minView) return;
    const self = this.membership.nodeId;
    const releases: number[] = [];
    const stale: ShardClaim[] = [];
    const acquisitions: Array<{ shard: number; revision: number }> = [];
    /** Claims of dead holders: nobody serves those shards, so they are not paced like a hand-over. */
    const takeovers: Array<{ shard: number; revision: number }> = [];
    const takenFrom = new Set<string>();
    const waiting = new Map<number, number>();
    const rechecks: number[] = [];
    const readAgainLater = (shard: number): void => {
      const since = this.waitingSince.get(shard) ?? step;
      const due = step - since >= RECHECK_AFTER_STEPS && rechecks.length < RECHECKS_PER_STEP;
      if (due) rechecks.push(shard);
      waiting.set(shard, due ? step : since);
    };
    const owners = this.desiredOwners(view);
    for (let shard = 0; shard < this.options.shardCount; shard++) {
      const mine = owners[shard] === self;
      if (this.held.has(shard)) {
        if (!mine) releases.push(shard);
        continue;
      }
      const claim = this.claims.get(shard);
      if (!mine) {
        // Left over from before a fence: nobody else may take a live node's claim, so free it.
        if (claim && claim.nodeId === self && claim.incarnation === this.incarnation) stale.push({ ...claim, shard });
        // Nobody live holds it, as far as this node knows: its owner claims it within a step or
        // two, so a view that stays so missed the claim, and requests for it would wait on a
        // claim change that never comes.
        else if (!claim || !this.membership.isAlive(claim.nodeId, claim.incarnation)) readAgainLater(shard);
        continue;
      }
      if (!claim) acquisitions.push({ shard, revision: 0 });
      else if (claim.nodeId === self) acquisitions.push({ shard, revision: claim.revision });
      else if (!this.membership.isAlive(claim.nodeId, claim.incarnation)) {
        takeovers.push({ shard, revision: claim.revision });
        takenFrom.add(claim.nodeId);
      } else readAgainLater(shard);
    }
    this.waitingSince = waiting;
    const budget = this.options.maxMovesPerTick;
    if (takenFrom.size) this.options.log.info({ from: [...takenFrom], shards: takeovers.length }, 'taking over the shards of dead nodes');
    await Promise.all(releases.slice(0, budget).map((shard) => this.handOver(shard)));
    await Promise.all(stale.slice(0, budget).map((claim) => this.freeClaim(claim)));
    await Promise.all([...takeovers, ...acquisitions.slice(0, budget)].map((a) => this.acquire(a.shard, a.revision, step)));
    if (rechecks.length) {
      this.options.log.warn({ shards: rechecks }, 'claims unchanged for too long (a watch event lost?); reading them again');
      await Promise.all(rechecks.map((shard) => this.reread(shard)));
    }
  }

  private desiredOwners(view: readonly string[]): ReadonlyArray<string | undefined> {
    const key = JSON.stringify(view);
    if (this.desired?.view !== key) {
      this.desired = { view: key, of: Array.from({ length: this.options.shardCount }, (_, shard) => desiredOwner(shard, view)) };
    }
    return this.desired.of;
  }

  /**
   * Graceful drain: hands every shard over and deletes the claims so successors claim at once.
   * A step in flight is let finish first (it is bounded like any step): a claim of it still on
   * its way would otherwise be taken after the hand-over, and the shard served, and its claim
   * left behind, by a node going away.
   */
  async releaseAll(): Promise<void> {
    this.releasingAll = true;
    try {
      await this.running?.catch(() => undefined);
      ++this.steps;
      await Promise.all([...this.held.keys()].map((shard) => this.handOver(shard)));
    } finally {
      this.releasingAll = false;
    }
  }

  stop(): void {
    this.watch?.unsubscribe();
  }

  private async acquire(shard: number, revision: number, step: number): Promise<void> {
    const value = encode({ nodeId: this.membership.nodeId, incarnation: this.incarnation });
    try {
      const taken = revision === 0 ? await this.bucket.create(claimKey(shard), value) : await this.bucket.update(claimKey(shard), value, revision);
      if (step !== this.steps) {
        // Cut loose by the bound: a later step or a drain may have freed, taken again or handed
        // over this shard without knowing of this claim. The claim goes by its revision: refused
        // if one of those changed it since; if it fails, the next steps free or take it again.
        this.options.log.warn({ shard }, 'shard claimed by an ownership step cut loose: not serving it');
        await this.bucket.delete(claimKey(shard), taken).catch(() => undefined);
        return;
      }
      // While the claim was on its way the watch may have shown another node's later claim, or
      // this node's lease may have lapsed: either would have dropped the shard had it been
      // held already (`observe`, `fence`), so it must not start serving it now.
      const later = this.claims.get(shard);
      if (later && later.revision > taken && !this.isOwn(later)) {
        this.options.log.warn({ shard, holder: later.nodeId }, 'shard claimed by another node while this claim was on its way: not serving it');
        return;
      }
      // Or a later claim freed since: this node's lease lapsed and came back meanwhile (another
      // node took the shard over from it, then handed it back), so no claim of it is left.
      const freed = this.freedAt.get(shard);
      if (freed !== undefined && freed > taken) {
        this.options.log.warn({ shard }, 'shard claimed and freed by another node while this claim was on its way: not serving it');
        return;
      }
      if (!this.membership.isLive) {
        // Left to lapse, or to be taken again by update once live, as a fence leaves its claims.
        this.observe(shard, { nodeId: this.membership.nodeId, incarnation: this.incarnation }, taken);
        this.options.log.warn({ shard }, 'fenced while the shard was being claimed: not serving it');
        return;
      }
      this.held.set(shard, taken);
      this.observe(shard, { nodeId: this.membership.nodeId, incarnation: this.incarnation }, taken);
    } catch (error) {
      // A lost race, or a claim this node knew wrongly: the stored one decides the next step.
      if (error instanceof KvConflictError) await this.reread(shard);
      else this.options.log.warn({ err: error, shard }, 'shard claim failed; will retry');
      return;
    }
    try {
      await this.server.acquire(shard, step);
    } catch (error) {
      this.options.log.error({ err: error, shard }, 'shard claimed but not served; its commands go unanswered until it moves');
    }
  }

  private async handOver(shard: number): Promise<void> {
    const revision = this.held.get(shard);
    if (revision === undefined) return;
    await this.server.release(shard);
    // A release that outlived its step (cut loose, then fenced) must not undo a later step's claim.
    if (this.held.get(shard) === revision) this.held.delete(shard);
    await this.bucket.delete(claimKey(shard), revision).catch((error) => {
      if (!(error instanceof KvConflictError)) this.options.log.warn({ err: error, shard }, 'claim not deleted; its lease will lapse');
    });
  }

  private async freeClaim(claim: ShardClaim): Promise<void> {
    await this.bucket.delete(claimKey(claim.shard), claim.revision).catch(async (error) => {
      if (error instanceof KvConflictError) await this.reread(claim.shard);
      else this.options.log.warn({ err: error, shard: claim.shard }, 'stale claim not freed; will retry');
    });
  }

  /**
   * Reads a shard's claim from the bucket, for when the watch may have misled this node
   * (a write refused on the revision it knew, a live holder that never hands over).
   */
  private async reread(shard: number): Promise<void> {
    const known = this.claims.get(shard);
    try {
      const entry = await this.bucket.get(claimKey(shard));
      // A watch event that came meanwhile is newer than this read.
      if (this.claims.get(shard) !== known) return;
      // Taken as read even at a lower revision: a NATS cluster killed at once can lose its last
      // writes, and then the bucket's revisions go back below what this node remembers.
      this.setClaim(shard, entry ? { ...decode<Omit<Claim, 'revision'>>(entry.value), revision: entry.revision } : undefined);
    } catch (error) {
      this.options.log.warn({ err: error, shard }, 'shard claim not read; will retry');
    }
  }

  /** The lease could not be renewed in time: stop serving everything before anyone takes over. */
  private fence(): void {
    if (this.held.size === 0) return;
    this.options.log.warn({ shards: this.held.size }, 'membership lease not renewed in time: fencing, dropping every shard');
    for (const shard of this.held.keys()) this.server.drop(shard);
    this.losses.fenced += this.held.size;
    this.held.clear();
  }

  private isOwn(claim: Omit<Claim, 'revision'>): boolean {
    return claim.nodeId === this.membership.nodeId && claim.incarnation === this.incarnation;
  }

  private observe(shard: number, claim: Omit<Claim, 'revision'>, revision: number): void {
    const known = this.claims.get(shard);
    if (known && known.revision >= revision) return;
    this.setClaim(shard, { nodeId: claim.nodeId, incarnation: claim.incarnation, revision });
    if (this.held.has(shard) && !this.isOwn(claim)) {
      this.options.log.warn({ shard, holder: claim.nodeId }, 'shard claimed by another node: dropping it');
      this.server.drop(shard);
      this.held.delete(shard);
      this.losses.preempted += 1;
    }
  }

  private forget(shard: number, revision: number): void {
    this.setClaim(shard, undefined, revision);
  }
}
