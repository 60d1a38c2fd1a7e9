import type { Clock } from '../actors/machine.js';
import { decode, encode } from './codec.js';
import { subjects } from './subjects.js';
import type { Subscription, Transport } from './transport/types.js';

/** What a node announces about itself in every heartbeat. */
export interface MemberRecord {
  nodeId: string;
  /** New at every start, so a restarted node is told apart from its earlier life. */
  incarnation: string;
  startedAt: number;
  shards: number;
  actors: number;
}

export interface MembershipTiming {
  /** How often a node announces itself (renews its lease). */
  renewMs: number;
  /** A node not heard from for this long (on the local clock) is dead. */
  deadAfterMs: number;
  /** A node that has not heard its own heartbeat back for this long stops serving: before `deadAfterMs`. */
  fenceAfterMs: number;
}

export const DEFAULT_MEMBERSHIP_TIMING: MembershipTiming = { renewMs: 500, deadAfterMs: 3_000, fenceAfterMs: 2_000 };

type Heartbeat = { op: 'alive'; record: MemberRecord } | { op: 'leave'; nodeId: string; incarnation: string };

interface Seen {
  record: MemberRecord;
  /** Local clock time of the latest heartbeat. */
  seenAt: number;
}

/**
 * Cluster membership by heartbeats on one core NATS subject. A node's lease is its
 * heartbeat *coming back to it*: while it hears itself, the others hear it too, and
 * when it stops hearing itself for `fenceAfterMs` it stops serving, before anyone
 * may judge it dead (`deadAfterMs`, measured on each observer's own clock, so no two
 * nodes need synchronised clocks). Core NATS, not a KV bucket: a JetStream stream
 * without a leader (seconds, after a server dies) would otherwise fence every node.
 */
export class Membership {
  private readonly members = new Map<string, Seen>();
  private lastEchoAt = Number.NEGATIVE_INFINITY;
  private subscription: Subscription | undefined;
  private readonly listeners = new Set<() => void>();
  private conflict: MemberRecord | undefined;

  constructor(
    private readonly transport: Transport,
    private self: MemberRecord,
    private readonly clock: Clock,
    readonly timing: MembershipTiming = DEFAULT_MEMBERSHIP_TIMING,
  ) {}

  get nodeId(): string {
    return this.self.nodeId;
  }

  /** Starts listening and announces this node; resolves once it heard itself. */
  async start(): Promise<void> {
    this.subscription = this.transport.subscribe(subjects.heartbeats, (data) => this.onHeartbeat(decode<Heartbeat>(data)));
    await this.transport.flush();
    await this.renew();
    await this.transport.flush();
  }

  /** Announces this node (with fresh load figures). */
  async renew(update: Partial<Pick<MemberRecord, 'shards' | 'actors'>> = {}): Promise<void> {
    if (this.conflict) {
      throw new Error(
        `node id ${this.self.nodeId} is in use by another process (incarnation ${this.conflict.incarnation}); give every node its own --node-id`,
      );
    }
    this.self = { ...this.self, ...update };
    const heartbeat: Heartbeat = { op: 'alive', record: this.self };
    this.transport.publish(subjects.heartbeats, encode(heartbeat));
  }

  /** True while this node's own heartbeats come back in time: it may serve shards. */
  get isLive(): boolean {
    return this.clock.now() - this.lastEchoAt < this.timing.fenceAfterMs;
  }

  /** Node ids of the live view, this node included while its own lease holds, sorted. */
  view(): string[] {
    return this.records()
      .map((r) => r.nodeId)
      .sort();
  }

  /** The records of live members, this node first. */
  records(): MemberRecord[] {
    const now = this.clock.now();
    const others = [...this.members.values()].filter((m) => now - m.seenAt < this.timing.deadAfterMs).map((m) => m.record);
    return this.isLive ? [this.self, ...others] : others;
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
    const heartbeat: Heartbeat = { op: 'leave', nodeId: this.self.nodeId, incarnation: this.self.incarnation };
    this.transport.publish(subjects.heartbeats, encode(heartbeat));
    this.lastEchoAt = Number.NEGATIVE_INFINITY;
    await this.transport.flush().catch(() => undefined);
    this.stop();
  }

  stop(): void {
    this.subscription?.unsubscribe();
  }

  private onHeartbeat(heartbeat: Heartbeat): void {
    if (heartbeat.op === 'leave') {
      const known = this.members.get(heartbeat.nodeId);
      if (known?.record.incarnation === heartbeat.incarnation) {
        this.members.delete(heartbeat.nodeId);
        this.changed();
      }
      return;
    }
    const { record } = heartbeat;
    if (record.nodeId === this.self.nodeId) {
      if (record.incarnation === this.self.incarnation) this.lastEchoAt = this.clock.now();
      else if (record.startedAt <= this.self.startedAt) this.conflict = record;
      return;
    }
    const isNew = !this.isAlive(record.nodeId, record.incarnation);
    this.members.set(record.nodeId, { record, seenAt: this.clock.now() });
    if (isNew) this.changed();
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
