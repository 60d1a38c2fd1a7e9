/**
 * The messaging and storage a presence node runs on, shaped after what NATS and
 * JetStream KV offer, so the embedded in-process transport and the NATS one are
 * interchangeable. Payloads are bytes: callers encode with msgpackr in both cases,
 * so nothing can depend on sharing objects in memory.
 */

export interface Subscription {
  unsubscribe(): void;
  /**
   * Stops taking new messages but handles those already on their way, then ends; a
   * responder handing its subject over uses it so no request in flight is lost.
   * Where absent, `unsubscribe` is as good (in process nothing is in flight).
   */
  drain?(): Promise<void>;
}

export type MessageHandler = (data: Uint8Array, subject: string) => void;

/**
 * Answers one request; a thrown error becomes a transport-level failure for the requester.
 * `null` sends no reply: another responder of the subject answers, or nobody does.
 */
export type RequestHandler = (data: Uint8Array, subject: string) => Uint8Array | null | Promise<Uint8Array | null>;

export interface Transport {
  /** A short name for logs and `/admin/cluster`: `embedded` or `nats`. */
  readonly kind: string;
  /** Reconnections to the broker since start (NATS); absent in process. */
  readonly reconnects?: number;
  publish(subject: string, data: Uint8Array): void;
  /** `*` matches one token and `>` the rest, as in NATS. */
  subscribe(subject: string, handler: MessageHandler): Subscription;
  /** Serves requests on `subject`; with a `queue`, one member of the group answers each. */
  serve(subject: string, handler: RequestHandler, options?: { queue?: string }): Subscription;
  /** Rejects with `NoRespondersError` at once when nobody serves `subject`, `RequestTimeoutError` after `timeoutMs`. */
  request(subject: string, data: Uint8Array, options: { timeoutMs: number }): Promise<Uint8Array>;
  /** Opens (creating if needed) a key-value bucket. */
  kv(bucket: string, options?: KvOptions): Promise<KvBucket>;
  /** Resolves once everything published so far has been handed to subscribers. */
  flush(): Promise<void>;
  /**
   * Sends what was published so far now, not at the end of this turn of the event loop.
   * For senders that run at the end of a turn themselves (the tick batches), whose writes
   * would otherwise wait for the next one. Absent where nothing is held (in process).
   */
  writePending?(): void;
  close(): Promise<void>;
}

export interface KvOptions {
  /** Entries older than this are dropped by the bucket (NATS 2.9 ignores per-key TTLs). */
  ttlMs?: number;
  /** Revisions kept per key; 1 unless history is wanted. */
  history?: number;
}

export interface KvEntry {
  key: string;
  value: Uint8Array;
  revision: number;
}

export type KvWatchEvent =
  | { op: 'put'; entry: KvEntry }
  | { op: 'delete'; key: string; revision: number };

/**
 * A bucket of keys with revisions. Keys are made of `[A-Za-z0-9_=.-]`; build them
 * with `subjects.ts`. Every revision-guarded call fails with `KvConflictError` when
 * the key moved on, which is what makes two would-be owners unable to diverge.
 */
export interface KvBucket {
  get(key: string): Promise<KvEntry | null>;
  put(key: string, value: Uint8Array): Promise<number>;
  /** Writes only if the key does not exist (or was deleted). */
  create(key: string, value: Uint8Array): Promise<number>;
  /** Writes only if the key's latest revision is `revision`. */
  update(key: string, value: Uint8Array, revision: number): Promise<number>;
  /**
   * Deletes; with `revision`, only if the key's latest revision is that. A call retried after
   * a lost answer that finds the key gone succeeds: its first attempt may be what removed it.
   */
  delete(key: string, revision?: number): Promise<void>;
  /**
   * Removes revision `revision` of `key` (its latest, if omitted) and leaves nothing behind:
   * no delete marker, no watch event. JetStream keeps a marker for every deleted key until
   * the stream is purged, so an index whose keys come and go would hold every key it ever
   * listed, and each `keys()` would walk them all. A later revision of the key is kept, so
   * a writer that lost the key to another one cannot erase the other's entry.
   */
  erase(key: string, revision?: number): Promise<void>;
  /** Every key, or those matching a subject-style `filter` such as `12.>`. */
  keys(filter?: string): Promise<string[]>;
  /** Calls `handler` for every change after the call; returns a handle to stop. */
  watch(handler: (event: KvWatchEvent) => void): Promise<Subscription>;
}
