import type {
  KvBucket,
  KvEntry,
  KvOptions,
  KvWatchEvent,
  MessageHandler,
  RequestHandler,
  Subscription,
  Transport,
} from '../../src/cluster/transport/types.js';

/**
 * What the membership and lease unit tests run on: nodes sharing one in-process transport,
 * each through its own link that a test can cut, on a clock the test moves by hand.
 */

export interface ManualClock {
  t: number;
  now(): number;
}

export const makeClock = (): ManualClock => ({ t: 0, now() { return this.t; } });

/** Lets queued deliveries (the embedded transport's microtasks: heartbeats, watch events) reach every node. */
export const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

const LOST = 'connection to NATS lost';
/** The answer of a responder behind a cut link: none, so the requester times out. */
const NEVER = new Promise<null>(() => undefined);

/**
 * A node's own connection to the shared transport.
 * - `down` cuts it off without its knowing (a partition): what it publishes goes nowhere (a core
 *   publish has no acknowledgement, so it does not fail), it hears no heartbeat, its KV calls and
 *   requests reject, requests to it go unanswered, and its KV watches fall behind, catching up
 *   when the link comes back (as a JetStream ordered consumer resumes). It can still tick.
 * - `loseConnection()` cuts it off as a closed socket does: as `down`, and requests to it find
 *   no responders at once.
 * - `deaf` cuts only what it receives on core subjects (say, a slow consumer whose messages
 *   are dropped): it still publishes and its KV calls and watches still work.
 * - `loseWatchEvent` makes its KV watches miss the events it picks (an event lost for good).
 * - `beforeGetAnswers` runs between a KV get's read and its answer reaching the node, so a
 *   test can change the bucket meanwhile and the node gets the value read before the change.
 * - `revisionOffset` is added to every KV revision it sees (and taken off those it sends):
 *   lowering it makes revisions go back, as when a NATS cluster killed at once lost its last writes.
 */
export class LinkTransport implements Transport {
  readonly kind = 'link';
  deaf = false;
  loseWatchEvent: ((event: KvWatchEvent) => boolean) | undefined;
  beforeGetAnswers: ((key: string) => Promise<void>) | undefined;
  revisionOffset = 0;
  private cut = false;
  private lost = false;
  private readonly resumers = new Set<() => void>();

  constructor(private readonly inner: Transport) {}

  get down(): boolean {
    return this.cut;
  }

  set down(value: boolean) {
    this.cut = value;
    if (!value) this.lost = false;
    if (!value) for (const resume of this.resumers) queueMicrotask(resume);
  }

  check(): void {
    if (this.cut) throw new Error(LOST);
  }

  onResume(resume: () => void): () => void {
    this.resumers.add(resume);
    return () => this.resumers.delete(resume);
  }

  publish(subject: string, data: Uint8Array): void {
    if (!this.cut) this.inner.publish(subject, data);
  }

  subscribe(subject: string, handler: MessageHandler): Subscription {
    return this.inner.subscribe(subject, (data, s) => {
      if (!this.cut && !this.deaf) handler(data, s);
    });
  }

  /**
   * While the connection is lost nobody is asked and requesters hear "no responders" (the
   * broker dropped its subscriptions); while the link is only down, requests to it go
   * unanswered until they time out (the broker still counts it subscribed).
   */
  serve(subject: string, handler: RequestHandler, options?: { queue?: string }): Subscription {
    return this.inner.serve(subject, (data, s) => (this.lost ? null : this.cut ? NEVER : handler(data, s)), options);
  }

  /** The connection is lost (a closed socket): as `down`, and the broker drops its subscriptions; `down = false` restores it. */
  loseConnection(): void {
    this.down = true;
    this.lost = true;
  }

  async request(subject: string, data: Uint8Array, options: { timeoutMs: number }): Promise<Uint8Array> {
    this.check();
    return this.inner.request(subject, data, options);
  }

  async kv(bucket: string, options?: KvOptions): Promise<KvBucket> {
    this.check();
    return new LinkBucket(this, await this.inner.kv(bucket, options));
  }

  async flush(): Promise<void> {
    this.check();
    await this.inner.flush();
  }

  /** The shared transport is closed by the test, not by one node. */
  async close(): Promise<void> {}
}

/** A bucket seen through a node's link: calls reject while it is down, watch events wait for it. */
export class LinkBucket implements KvBucket {
  constructor(private readonly link: LinkTransport, private readonly inner: KvBucket) {}
  async get(key: string): Promise<KvEntry | null> {
    this.link.check();
    const entry = await this.inner.get(key);
    await this.link.beforeGetAnswers?.(key);
    return entry && { ...entry, revision: entry.revision + this.link.revisionOffset };
  }
  async put(key: string, value: Uint8Array): Promise<number> {
    this.link.check();
    return (await this.inner.put(key, value)) + this.link.revisionOffset;
  }
  async create(key: string, value: Uint8Array): Promise<number> {
    this.link.check();
    return (await this.inner.create(key, value)) + this.link.revisionOffset;
  }
  async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    this.link.check();
    return (await this.inner.update(key, value, revision - this.link.revisionOffset)) + this.link.revisionOffset;
  }
  async delete(key: string, revision?: number): Promise<void> {
    this.link.check();
    return this.inner.delete(key, revision === undefined ? undefined : revision - this.link.revisionOffset);
  }
  async erase(key: string, revision?: number): Promise<void> {
    this.link.check();
    return this.inner.erase(key, revision === undefined ? undefined : revision - this.link.revisionOffset);
  }
  async keys(filter?: string): Promise<string[]> {
    this.link.check();
    return this.inner.keys(filter);
  }
  async watch(handler: (event: KvWatchEvent) => void): Promise<Subscription> {
    const backlog: KvWatchEvent[] = [];
    const stopResuming = this.link.onResume(() => {
      for (const event of backlog.splice(0)) handler(this.offset(event));
    });
    // Events reach the watcher a moment after the write is acknowledged to the writer, as over a
    // network (a macrotask later, in order), not in the same microtask burst.
    const inner = await this.inner.watch((event) => {
      setImmediate(() => {
        if (this.link.loseWatchEvent?.(event)) return;
        if (this.link.down || backlog.length > 0) backlog.push(event);
        else handler(this.offset(event));
      });
    });
    return {
      unsubscribe: () => {
        stopResuming();
        inner.unsubscribe();
      },
    };
  }

  private offset(event: KvWatchEvent): KvWatchEvent {
    const by = this.link.revisionOffset;
    return event.op === 'put' ? { op: 'put', entry: { ...event.entry, revision: event.entry.revision + by } } : { ...event, revision: event.revision + by };
  }
}
