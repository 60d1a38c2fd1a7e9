import type { Clock } from '../actors/machine.js';
import { decode, encode } from './codec.js';
import { KvConflictError } from './transport/errors.js';
import type { KvBucket, Subscription } from './transport/types.js';

/** What a node announces about itself in the `nodes` bucket. */
export interface MemberRecord {
  nodeId: string;
  /** New at every start, so a restarted node is told apart from its earlier life. */
  incarnation: string;
  startedAt: number;
  /** Where its HTTP port can be reached, for the cluster view. */
  url?: string;
  shards: number;
  actors: number;
}

export interface MembershipTiming {
  /** How often a node renews its record (its lease). */
  renewMs: number;
  /** A node whose record did not move for this long (as seen locally) is dead. */
  deadAfterMs: number;
  /** A node that could not renew for this long stops serving on its own: well before `deadAfterMs`. */
  fenceAfterMs: number;
}

export const DEFAULT_MEMBERSHIP_TIMING: MembershipTiming = { renewMs: 500, deadAfterMs: 2_500, fenceAfterMs: 1_500 };

interface Seen {
  record: MemberRecord;
  revision: number;
  /** Local clock time at which this revision was first seen. */
  seenAt: number;
}

/**
 * Cluster membership in the `nodes` bucket. Each node's record is its lease: renewed
 * every `renewMs` with compare-and-set on its own revision. Liveness of others is
 * judged by when a new revision was last *observed* on the local clock, so no two
 * nodes need synchronised clocks; a node that cannot renew fences itself first.
 */
export class Membership {
  private readonly members = new Map<string, Seen>();
  private revision = 0;
  private lastRenewedAt = Number.NEGATIVE_INFINITY;
  private watch: Subscription | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly bucket: KvBucket,
    private self: MemberRecord,
    private readonly clock: Clock,
    readonly timing: MembershipTiming = DEFAULT_MEMBERSHIP_TIMING,
  ) {}

  get nodeId(): string {
    return this.self.nodeId;
  }

  async start(): Promise<void> {
    this.watch = await this.bucket.watch((event) => {
      const nodeId = event.op === 'put' ? event.entry.key : event.key;
      if (nodeId === this.self.nodeId) return;
      if (event.op === 'delete') this.members.delete(nodeId);
      else this.observe(decode<MemberRecord>(event.entry.value), event.entry.revision);
      this.changed();
    });
    for (const key of await this.bucket.keys()) {
      if (key === this.self.nodeId) continue;
      const entry = await this.bucket.get(key);
      if (entry) this.observe(decode<MemberRecord>(entry.value), entry.revision);
    }
    this.revision = await this.bucket.put(this.self.nodeId, encode(this.self));
    this.lastRenewedAt = this.clock.now();
  }

  /**
   * Renews this node's record. A conflict means another process wrote our key (a
   * second node with the same id): that is fatal for serving, so it surfaces.
   */
  async renew(update: Partial<Pick<MemberRecord, 'shards' | 'actors'>> = {}): Promise<void> {
    this.self = { ...this.self, ...update };
    const startedAt = this.clock.now();
    try {
      this.revision = await this.bucket.update(this.self.nodeId, encode(this.self), this.revision);
      this.lastRenewedAt = startedAt;
    } catch (error) {
      if (error instanceof KvConflictError) {
        throw new Error(`node id ${this.self.nodeId} is in use by another process; give every node its own --node-id`, { cause: error });
      }
      throw error;
    }
  }

  /** True while this node's lease is fresh enough to serve shards. */
  get isLive(): boolean {
    return this.clock.now() - this.lastRenewedAt < this.timing.fenceAfterMs;
  }

  /** Node ids of the live view, this node included while its own lease holds, sorted. */
  view(): string[] {
    const now = this.clock.now();
    const live = [...this.members.values()]
      .filter((m) => now - m.seenAt < this.timing.deadAfterMs)
      .map((m) => m.record.nodeId);
    if (this.isLive) live.push(this.self.nodeId);
    return live.sort();
  }

  /** The record of a live member, for the cluster view. */
  records(): MemberRecord[] {
    const live = new Set(this.view());
    const others = [...this.members.values()].map((m) => m.record).filter((r) => live.has(r.nodeId));
    return live.has(this.self.nodeId) ? [this.self, ...others] : others;
  }

  isAlive(nodeId: string, incarnation?: string): boolean {
    if (nodeId === this.self.nodeId) return this.isLive && (incarnation === undefined || incarnation === this.self.incarnation);
    const member = this.members.get(nodeId);
    if (!member || this.clock.now() - member.seenAt >= this.timing.deadAfterMs) return false;
    return incarnation === undefined || member.record.incarnation === incarnation;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Leaves the cluster at once: the others re-balance without waiting for the lease to lapse. */
  async leave(): Promise<void> {
    this.watch?.unsubscribe();
    this.lastRenewedAt = Number.NEGATIVE_INFINITY;
    await this.bucket.delete(this.self.nodeId, this.revision).catch(() => undefined);
  }

  stop(): void {
    this.watch?.unsubscribe();
  }

  private observe(record: MemberRecord, revision: number): void {
    const known = this.members.get(record.nodeId);
    if (known && known.revision >= revision) return;
    this.members.set(record.nodeId, { record, revision, seenAt: this.clock.now() });
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
