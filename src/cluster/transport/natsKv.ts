import { RequestError, TimeoutError } from '@nats-io/transport-node';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { KvWatchInclude, type Bucket, type Kvm } from '@nats-io/kv';
import { KvConflictError, KvUnavailableError } from './errors.js';
import type { KvBucket, KvEntry, KvOptions, KvWatchEvent, Subscription } from './types.js';

export interface KvLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/**
 * Opens a JetStream KV bucket, creating it with `replicas` if it does not exist.
 * A new JetStream cluster answers its first calls only once a meta leader is
 * elected (seconds), and R3 placement fails until the peers are known: those
 * answers are retried with backoff for up to `retryForMs`.
 *
 * An existing bucket is opened as it is: its TTL, history and replicas are not changed.
 */
export async function openNatsKv(
  kvm: Kvm,
  bucket: string,
  options: KvOptions & { replicas: number; retryForMs?: number; log?: KvLog },
): Promise<NatsKvBucket> {
  const deadline = Date.now() + (options.retryForMs ?? 30_000);
  for (let attempt = 0; ; attempt++) {
    try {
      const kv = await kvm.create(bucket, {
        replicas: options.replicas,
        history: options.history ?? 1,
        ...(options.ttlMs !== undefined ? { ttl: options.ttlMs } : {}),
      });
      // The manager's Bucket: `erase` needs its stream, which the KV interface does not show.
      return new NatsKvBucket(bucket, kv as Bucket, options.log);
    } catch (err) {
      if (!(isTransientJetStreamError(err) || isCreatedElsewhere(err)) || Date.now() >= deadline) {
        throw new Error(
          `kv ${bucket}: cannot create or open the bucket with ${options.replicas} replica(s)` +
            ` (replicas must not exceed the JetStream servers in the cluster): ${String(err)}`,
          { cause: err },
        );
      }
      const delayMs = Math.min(2_000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
      options.log?.info({ bucket, attempt, delayMs, err: String(err) }, 'kv bucket not ready, retrying');
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/**
 * "Stream not found" while opening: another node is creating the same bucket at this moment
 * (every node of a new cluster opens every bucket as it starts), and its stream is not there
 * yet for this one's lookup. A CI run saw a node fail to start on it; the next try opens it.
 */
const isCreatedElsewhere = (err: unknown): boolean =>
  err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound;

// 10005 no suitable peers for placement, 10008 JetStream system temporarily unavailable,
// 10023 insufficient resources: all seen while a cluster forms or loses a server.
const TRANSIENT_API_CODES = new Set([10005, 10008, 10023]);

/** Timeouts, "no responders" (JetStream not reachable yet) and JetStream 503s. */
export function isTransientJetStreamError(err: unknown): boolean {
  if (err instanceof TimeoutError || err instanceof RequestError) return true;
  if (err instanceof JetStreamApiError) return err.status === 503 || TRANSIENT_API_CODES.has(err.code);
  // @nats-io/jetstream reports a request without responders as JetStreamNotEnabled
  // (not exported), with the RequestError as its cause.
  return err instanceof Error && err.name === 'JetStreamNotEnabled' && err.cause instanceof RequestError;
}

/**
 * JetStream did not answer a KV call: no stream leader (an election after a
 * server loss takes 4-9 s on NATS 2.9), or the client is between servers.
 * Retrying later can succeed; nothing is known about whether a write landed.
 */

/** How long one KV call keeps retrying while JetStream cannot answer. */
const UNAVAILABLE_RETRY_MS = 12_000;
/** A key listing that brings no key for this long has stalled (`NatsKvBucket.keys`). */
const KEYS_QUIET_MS = 2_000;

const isWrongLastSequence = (err: unknown): boolean =>
  err instanceof JetStreamApiError &&
  (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
    err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);

// JetStream answers a delete of a missing sequence with 10057 (message delete failed) and the
// store's reason, "no message found": a later revision replaced it (one revision kept per
// key), or it was erased before.
const isMessageGone = (err: unknown): boolean =>
  err instanceof JetStreamApiError &&
  (err.code === JetStreamApiCodes.NoMessageFound || (err.code === 10057 && /no message found/i.test(err.message)));

/** The revision of `latest` if it holds `value`: a write of it landed. */
const wrote = (latest: KvEntry | null, value: Uint8Array): { result: number } | undefined =>
  latest && Buffer.compare(latest.value, value) === 0 ? { result: latest.revision } : undefined;

/** A JetStream KV bucket with the contract of `KvBucket` (see `MemoryKvBucket`). */
export class NatsKvBucket implements KvBucket {
  constructor(readonly name: string, private readonly kv: Bucket, private readonly log?: KvLog) {}

  async get(key: string): Promise<KvEntry | null> {
    const entry = await this.call(key, () => this.kv.get(key));
    if (!entry || entry.operation !== 'PUT') return null;
    return { key, value: entry.value, revision: entry.revision };
  }

  put(key: string, value: Uint8Array): Promise<number> {
    return this.call(key, () => this.kv.put(key, value));
  }

  create(key: string, value: Uint8Array): Promise<number> {
    return this.guarded(key, 'absent', () => this.kv.create(key, value), (latest) => wrote(latest, value));
  }

  update(key: string, value: Uint8Array, revision: number): Promise<number> {
    // nats.js refuses revision 0 with a plain Error; no live key is ever at 0.
    if (revision <= 0) return Promise.reject(new KvConflictError(this.name, key, revision));
    return this.guarded(key, revision, () => this.kv.update(key, value, revision), (latest) => wrote(latest, value));
  }

  async delete(key: string, revision?: number): Promise<void> {
    if (revision === undefined) {
      // A delete marker for an absent key would be a revision and a watch event
      // that the in-process bucket does not produce.
      if ((await this.get(key)) === null) return;
      await this.call(key, () => this.kv.delete(key));
      return;
    }
    // nats.js sends no expectation for previousSeq 0 (an unconditional delete).
    if (revision <= 0) throw new KvConflictError(this.name, key, revision);
    // The key being gone is what the caller asked for, whoever removed it.
    await this.guarded(key, revision, () => this.kv.delete(key, { previousSeq: revision }), (latest) => (latest === null ? { result: undefined } : undefined));
  }

  /**
   * A write guarded by the key's revision. A retry after a timeout may find the key moved on
   * by its own first attempt, which JetStream took without its answer arriving: taken for a
   * conflict, the owner would drop a change that is durable but never announced, and restore
   * nothing. So a retried write refused on the revision reads the key, and `landed` tells from
   * it whether the write is there (its result), or the refusal is a conflict (undefined).
   */
  private async guarded<T>(key: string, expected: number | 'absent', write: () => Promise<T>, landed: (latest: KvEntry | null) => { result: T } | undefined): Promise<T> {
    let retried = false;
    try {
      return await this.call(key, (attempt) => {
        retried = attempt > 0;
        return write();
      });
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
      const outcome = retried ? landed(await this.get(key)) : undefined;
      if (outcome) return outcome.result;
      throw new KvConflictError(this.name, key, expected, { cause: err });
    }
  }

  async erase(key: string, revision?: number): Promise<void> {
    const sequence = revision ?? (await this.get(key))?.revision;
    if (sequence === undefined) return;
    try {
      await this.call(key, () => this.kv.jsm.streams.deleteMessage(this.kv.stream, sequence, false));
    } catch (err) {
      if (isMessageGone(err)) return;
      throw err;
    }
  }

  /**
   * Lists keys. nats.js ends a listing on the message that leaves nothing pending, counted when
   * the listing starts; if that message is erased before it is delivered (a shard owner erasing
   * idle users' `active` entries while another node lists them), it never comes and the listing
   * never ends. So a listing quiet for `KEYS_QUIET_MS` is started again, until one ends or
   * `UNAVAILABLE_RETRY_MS` have passed (then KvUnavailableError, as for a lost connection).
   */
  async keys(filter = '>'): Promise<string[]> {
    const giveUpAt = Date.now() + UNAVAILABLE_RETRY_MS;
    for (;;) {
      const listed = await this.listKeys(filter, Math.max(1, Math.min(KEYS_QUIET_MS, giveUpAt - Date.now())));
      if (listed) return listed;
      if (Date.now() >= giveUpAt) throw new KvUnavailableError(this.name, filter);
      this.log?.info({ bucket: this.name, filter }, 'kv key listing stalled; listing again');
    }
  }

  /** One listing; undefined if no key came for `quietMs` before it ended. */
  private async listKeys(filter: string, quietMs: number): Promise<string[] | undefined> {
    const keys: string[] = [];
    const iterator = await this.call(filter, () => this.kv.keys(filter));
    let lastKeyAt = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const quiet = new Promise<undefined>((resolve) => {
      const check = () => {
        const idleMs = Date.now() - lastKeyAt;
        if (idleMs < quietMs) {
          timer = setTimeout(check, quietMs - idleMs);
          return;
        }
        iterator.stop();
        resolve(undefined);
      };
      timer = setTimeout(check, quietMs);
    });
    try {
      return await Promise.race([
        (async () => {
          for await (const key of iterator) {
            keys.push(key);
            lastKeyAt = Date.now();
          }
          return keys;
        })(),
        quiet,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Watches every key for changes. nats.js re-creates its ordered consumer on gaps by
   * itself; should the iterator still end (the consumer lost for good, say the whole
   * NATS cluster restarted), the watch is set up again from the next revision, so no
   * change is missed and the caller never sees it end.
   */
  async watch(handler: (event: KvWatchEvent) => void): Promise<Subscription> {
    let stopped = false;
    // Where the watch starts, read before it: a watch that ends before its first event resumes
    // after this, not "from now" again, which would miss what changed while it was down.
    let lastRevision = (await this.call('>', () => this.kv.status())).streamInfo.state.last_seq;
    let iter = await this.call('>', () => this.kv.watch({ include: KvWatchInclude.UpdatesOnly }));
    const consume = async (): Promise<void> => {
      for (let attempt = 0; !stopped; ) {
        try {
          for await (const e of iter) {
            attempt = 0;
            lastRevision = e.revision;
            const event: KvWatchEvent =
              e.operation === 'PUT'
                ? { op: 'put', entry: { key: e.key, value: e.value, revision: e.revision } }
                : { op: 'delete', key: e.key, revision: e.revision };
            try {
              handler(event);
            } catch (err) {
              this.log?.warn({ bucket: this.name, key: e.key, err }, 'kv watch handler threw');
            }
          }
        } catch (err) {
          this.log?.warn({ bucket: this.name, err }, 'kv watch ended with an error');
        }
        while (!stopped) {
          await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 100 * 2 ** attempt++)));
          if (stopped) return;
          try {
            const from = lastRevision + 1;
            iter = await this.kv.watch(
              lastRevision > 0 ? { include: KvWatchInclude.AllHistory, resumeFromRevision: from } : { include: KvWatchInclude.UpdatesOnly },
            );
            this.log?.info({ bucket: this.name, from }, 'kv watch set up again');
            break;
          } catch (err) {
            this.log?.warn({ bucket: this.name, err }, 'kv watch could not be set up again; retrying');
          }
        }
      }
    };
    void consume();
    return {
      unsubscribe: () => {
        stopped = true;
        iter.stop();
      },
    };
  }

  /**
   * Runs one KV call, retrying while JetStream has no answer (a stream leader
   * election after a server died takes seconds), so callers see a slow call rather
   * than a failed one; past `UNAVAILABLE_RETRY_MS` it fails with KvUnavailableError.
   */
  private async call<T>(key: string, op: (attempt: number) => Promise<T>): Promise<T> {
    const giveUpAt = Date.now() + UNAVAILABLE_RETRY_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await op(attempt);
      } catch (err) {
        if (!isTransientJetStreamError(err)) throw err;
        const delay = Math.min(1_000, 50 * 2 ** attempt) * (0.5 + Math.random() / 2);
        if (Date.now() + delay > giveUpAt) throw new KvUnavailableError(this.name, key, { cause: err });
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }
}
