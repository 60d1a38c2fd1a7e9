import type { Clock } from '../actors/machine.js';
import { decode, encode } from './codec.js';
import { subjects } from './subjects.js';
import { NoRespondersError, TransportClosedError } from './transport/errors.js';
import type { Subscription, Transport } from './transport/types.js';

/** What a node announces about itself in every heartbeat. */
export interface MemberRecord {
  nodeId: string;
  /** New at every start, so a restarted node is told apart from its earlier life. */
  incarnation: string;
  startedAt: number;
  shards: number;
  actors: number;
  /** Users with a device connected, among this node's actors. */
  onlineUsers?: number;
  /** Actor transitions per second, over the last few seconds. */
  eventsPerSecond?: number;
}

export interface MembershipTiming {
  /** How often a node announces itself (renews its lease). */
  renewMs: number;
  /** A node not heard from for this long (on the local clock) is dead. */
  deadAfterMs: number;
  /** A node that has not heard its own heartbeat back for this long stops serving: before `deadAfterMs`. */
  fenceAfterMs: number;
  /**
   * A node not heard from for this long is asked directly; if NATS answers twice, at least
   * `probeConfirmMs` apart, that nobody listens on its probe subject, its connection is gone
   * (a killed process) and it is dead without waiting for `deadAfterMs`.
   */
  probeAfterMs: number;
  /** Longer than a live node takes to reconnect to another NATS server and subscribe again. */
  probeConfirmMs: number;
}

export const DEFAULT_MEMBERSHIP_TIMING: MembershipTiming = { renewMs: 500, deadAfterMs: 6_000, fenceAfterMs: 4_000, probeAfterMs: 600, probeConfirmMs: 250 };

/** How long a probe waits for its answer: a node that does not answer in time is left to `deadAfterMs`. */
const PROBE_TIMEOUT_MS = 1_000;

const EMPTY = new Uint8Array(0);

/**
 * `fenced` is set while the sender cannot hear itself: it serves nothing, so the
 * others must not count its heartbeat as a renewed lease (else a node that can
 * publish but not receive would keep its shards unserved for as long as it lasts).
 */
type Heartbeat =
  | { op: 'alive'; record: MemberRecord; fenced?: boolean; sentAt: number }
  | { op: 'leave'; nodeId: string; incarnation: string };

interface Seen {
  record: MemberRecord;
  /** Local clock time of the latest heartbeat. */
  seenAt: number;
  /** It said it left: dead at once, until a heartbeat of a new incarnation. */
  left: boolean;
  /** Clock time of the first probe that found nobody listening for it since this heartbeat. */
  absentSince?: number;
  /**
   * Probes found nobody listening for it, twice and `probeConfirmMs` apart, since this
   * heartbeat: dead at once, until its next heartbeat (a connection that came back).
   */
  unreachable?: boolean;
  /**
   * Already dead when this node's link went: out of its view until its next heartbeat, instead
   * of counted alive again for `deadAfterMs` like the members it may have missed meanwhile.
   */
  expired?: boolean;
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
  /**
   * Since when this node has heard the subject without a gap (its own echo came back
   * after one of `fenceAfterMs` or more: at start, or when its link returned). Only a
   * node that has listened for `deadAfterMs` may judge another dead for not being heard.
   */
  private hearingSince = Number.POSITIVE_INFINITY;
  /** Own heartbeats heard back since start: lease renewals, for the metrics. */
  echoes = 0;
  private stopped = false;
  private subscription: Subscription | undefined;
  private probeResponder: Subscription | undefined;
  /** Members with a probe in flight: one at a time each. */
  private readonly probing = new Set<string>();
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
    this.probeResponder = this.transport.serve(subjects.nodeProbe(this.self.nodeId), () => encode({ incarnation: this.self.incarnation }));
    await this.transport.flush();
    await this.renew();
    await this.transport.flush();
  }

  /** Announces this node (with fresh load figures). */
  async renew(update: Partial<Pick<MemberRecord, 'shards' | 'actors' | 'onlineUsers' | 'eventsPerSecond'>> = {}): Promise<void> {
    if (this.conflict) {
      throw new Error(
        `node id ${this.self.nodeId} is in use by another process (incarnation ${this.conflict.incarnation}); give every node its own --node-id`,
      );
    }
    this.self = { ...this.self, ...update };
    this.announce();
  }

  private announce(): void {
    const heartbeat: Heartbeat = { op: 'alive', record: this.self, fenced: !this.isLive, sentAt: this.clock.now() };
    this.transport.publish(subjects.heartbeats, encode(heartbeat));
  }

  /** True while this node's own heartbeats come back in time: it may serve shards. */
  get isLive(): boolean {
    return this.clock.now() - this.lastEchoAt < this.timing.fenceAfterMs;
  }

  /**
   * True once the others may judge this node dead and take its shards: its last echoed
   * heartbeat is older than halfway between fencing and `deadAfterMs`, a margin for the
   * delivery of that heartbeat to the others. Until then no other node serves its shards.
   */
  get othersMayJudgeDead(): boolean {
    return this.clock.now() - this.lastEchoAt >= (this.timing.fenceAfterMs + this.timing.deadAfterMs) / 2;
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
    const others = [...this.members.values()].filter((m) => !m.expired && this.holdsLease(m, now)).map((m) => m.record);
    return this.isLive ? [this.self, ...others] : others;
  }

  /**
   * Whether `nodeId` (in that incarnation) may still hold leases. A node this one has
   * not heard of counts as alive until this one has listened for `deadAfterMs`: a node
   * that just started, or whose link just came back, must not take over the claims of
   * live nodes whose next heartbeat simply has not arrived yet.
   */
  isAlive(nodeId: string, incarnation?: string): boolean {
    if (nodeId === this.self.nodeId) return this.isLive && (incarnation === undefined || incarnation === this.self.incarnation);
    const now = this.clock.now();
    const member = this.members.get(nodeId);
    if (!member) return now - this.hearingSince < this.timing.deadAfterMs;
    if (incarnation !== undefined && member.record.incarnation !== incarnation) return false;
    return this.holdsLease(member, now);
  }

  private holdsLease(member: Seen, now: number): boolean {
    return !member.left && !member.unreachable && now - Math.max(member.seenAt, this.hearingSince) < this.timing.deadAfterMs;
  }

  /**
   * Asks every member silent for `probeAfterMs` whether it still listens. Only "no
   * responders" counts, and only as an answer about the heartbeat last heard: NATS says so
   * when the member's connection is gone, which a killed process's is at once, while a
   * frozen or busy one keeps its connection (and its lease, until `deadAfterMs`). A member
   * found absent twice, `probeConfirmMs` apart, is dead: a live one whose NATS server went
   * away has reconnected to another by then. An answer renews nothing: the lease stays the
   * heartbeat's. Runs on a timer, every `renewMs / 2` in a node.
   */
  probeSilent(): void {
    if (this.stopped || !this.isLive) return;
    const now = this.clock.now();
    for (const [nodeId, member] of this.members) {
      if (this.probing.has(nodeId) || !this.holdsLease(member, now)) continue;
      if (now - member.seenAt < this.timing.probeAfterMs) continue;
      if (member.absentSince !== undefined && now - member.absentSince < this.timing.probeConfirmMs) continue;
      this.probing.add(nodeId);
      void this.probe(nodeId, member).finally(() => this.probing.delete(nodeId));
    }
  }

  private async probe(nodeId: string, asked: Seen): Promise<void> {
    let absent: boolean;
    try {
      const answer = decode<{ incarnation: string }>(await this.transport.request(subjects.nodeProbe(nodeId), EMPTY, { timeoutMs: PROBE_TIMEOUT_MS }));
      absent = answer.incarnation !== asked.record.incarnation;
    } catch (error) {
      if (!(error instanceof NoRespondersError) || error instanceof TransportClosedError) return;
      absent = true;
    }
    // A heartbeat that came meanwhile is newer than the answer.
    if (this.stopped || this.members.get(nodeId) !== asked) return;
    if (!absent) {
      if (asked.absentSince !== undefined) this.members.set(nodeId, { ...asked, absentSince: undefined });
      return;
    }
    const now = this.clock.now();
    if (asked.absentSince === undefined) {
      this.members.set(nodeId, { ...asked, absentSince: now });
      return;
    }
    if (now - asked.absentSince < this.timing.probeConfirmMs) return;
    this.members.set(nodeId, { ...asked, unreachable: true });
    this.changed();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Leaves the cluster at once: the others re-balance without waiting for the lease to lapse. */
  async leave(): Promise<void> {
    const heartbeat: Heartbeat = { op: 'leave', nodeId: this.self.nodeId, incarnation: this.self.incarnation };
    this.transport.publish(subjects.heartbeats, encode(heartbeat));
    this.stop();
    await this.transport.flush().catch(() => undefined);
  }

  stop(): void {
    this.stopped = true;
    this.lastEchoAt = Number.NEGATIVE_INFINITY;
    this.subscription?.unsubscribe();
    this.probeResponder?.unsubscribe();
  }

  private onHeartbeat(heartbeat: Heartbeat): void {
    if (this.stopped) return;
    const now = this.clock.now();
    if (heartbeat.op === 'leave') {
      const known = this.members.get(heartbeat.nodeId);
      if (known && known.record.incarnation === heartbeat.incarnation && !known.left) {
        this.members.set(heartbeat.nodeId, { ...known, left: true });
        this.changed();
      }
      return;
    }
    const { record } = heartbeat;
    if (record.nodeId === this.self.nodeId) {
      if (record.incarnation === this.self.incarnation) {
        const wasFenced = !this.isLive;
        const heardUntil = this.lastEchoAt;
        // The lease runs from when the heartbeat left: an echo that waited in the socket of a
        // frozen process must not renew a lease the others have let lapse meanwhile.
        this.lastEchoAt = Math.max(this.lastEchoAt, heartbeat.sentAt);
        this.echoes += 1;
        if (wasFenced && this.isLive) {
          for (const [nodeId, member] of this.members) {
            if (!this.holdsLease(member, heardUntil)) this.members.set(nodeId, { ...member, expired: true });
          }
          this.hearingSince = now;
          // What it sent while fenced renewed nothing: announce at once that it can serve.
          this.announce();
        }
      } else if (record.startedAt <= this.self.startedAt) this.conflict = record;
      return;
    }
    const known = this.members.get(record.nodeId);
    const sameLife = known?.record.incarnation === record.incarnation;
    if (heartbeat.fenced) {
      // Not a renewal; but a fenced restart still replaces the earlier incarnation.
      if (known && !sameLife) {
        this.members.delete(record.nodeId);
        this.changed();
      }
      return;
    }
    if (sameLife && known.left) return; // a heartbeat sent just before its leave
    const wasHolding = sameLife && !known.expired && this.holdsLease(known, now);
    this.members.set(record.nodeId, { record, seenAt: now, left: false });
    if (!wasHolding) this.changed();
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
