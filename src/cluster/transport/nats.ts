import {
  ClosedConnectionError,
  DrainingConnectionError,
  RequestError,
  TimeoutError,
  connect,
  type NatsConnection,
} from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { NoRespondersError, RequestTimeoutError, TransportClosedError } from './errors.js';
import { openNatsKv, type KvLog, type NatsKvBucket } from './natsKv.js';
import { cancelSettledRequestsWithoutStacks } from './natsRequests.js';
import { writeOncePerTurn, type HeldWrites } from './natsWrites.js';
import type { KvBucket, KvOptions, MessageHandler, RequestHandler, Subscription, Transport } from './types.js';

export interface NatsTransportOptions {
  /** `nats://host:port` of one or more servers of the cluster. */
  servers: string[];
  /** Connection name shown by the server (`nats server report connections`). */
  name?: string;
  log?: KvLog;
  /**
   * Replicas of the KV buckets this transport creates: 1 for a single server,
   * 3 for a 3-server cluster (what `presence start --nats` passes for a cluster).
   * Default 1. Existing buckets are opened as they are.
   */
  replicas?: number;
  /** Base wait between reconnect attempts; each adds up to `reconnectJitterMs`. Default 1000 / 500. */
  reconnectTimeWaitMs?: number;
  reconnectJitterMs?: number;
  /** Ping period; a server is given up after 3 unanswered pings. Default 10 s. */
  pingIntervalMs?: number;
}

const noop: Subscription = { unsubscribe: () => undefined };
/** How long a responder's drain may wait for the server before it simply unsubscribes. */
const DRAIN_BOUND_MS = 2_000;

/**
 * The transport over a NATS cluster: core NATS for pub/sub and request/reply,
 * JetStream KV for buckets. It reconnects forever (with jitter) and keeps its
 * subscriptions across reconnects; `close()` drains.
 *
 * ```ts
 * const transport = await NatsTransport.connect({ servers: ['nats://n1:4222'], replicas: 3, log });
 * const leases = await transport.kv('leases', { ttlMs: 30_000 });
 * ```
 */
export class NatsTransport implements Transport {
  readonly kind = 'nats';
  private reconnectCount = 0;
  private readonly kvm: Kvm;
  private readonly buckets = new Map<string, Promise<NatsKvBucket>>();
  private closing: Promise<void> | undefined;

  private constructor(
    /** The underlying connection, for diagnostics (`info`, `stats()`). */
    readonly nc: NatsConnection,
    private readonly replicas: number,
    private readonly log?: KvLog,
    private readonly held?: HeldWrites,
  ) {
    this.kvm = new Kvm(nc);
    void this.watchStatus();
  }

  /**
   * Connects, waiting (forever, with backoff) for a first server to answer:
   * a node started before its NATS cluster simply waits for it.
   */
  static async connect(options: NatsTransportOptions): Promise<NatsTransport> {
    if (!cancelSettledRequestsWithoutStacks()) {
      options.log?.warn({}, 'this nats.js cannot cancel answered requests without building an Error each: requests cost more CPU');
    }
    const nc = await connect({
      servers: options.servers,
      ...(options.name !== undefined ? { name: options.name } : {}),
      maxReconnectAttempts: -1,
      reconnectTimeWait: options.reconnectTimeWaitMs ?? 1_000,
      reconnectJitter: options.reconnectJitterMs ?? 500,
      waitOnFirstConnect: true,
      pingInterval: options.pingIntervalMs ?? 10_000,
      maxPingOut: 3,
      // nats.js otherwise builds two Error objects with stack traces per request up front,
      // in case it fails: 6.6 % of a node's CPU in a profile of the paced storm. A failure
      // still has its type; it lacks only the caller's stack.
      noAsyncTraces: true,
    });
    const held = writeOncePerTurn(nc);
    if (!held) options.log?.warn({}, 'this nats.js cannot hold its writes to one per event loop turn: each message is written on its own');
    options.log?.info({ server: nc.getServer(), cluster: nc.info?.cluster }, 'connected to NATS');
    return new NatsTransport(nc, options.replicas ?? 1, options.log, held);
  }

  /**
   * The number of servers of the cluster as the connected server last gossiped
   * it (`connect_urls`, which lists every server's client URL, its own included;
   * 1 without a cluster). A hint for tooling only, not a source for `replicas`:
   * it is smaller while routes form or a server is down, and a bucket created with
   * too few replicas stays so.
   */
  static clusterSize(nc: NatsConnection): number {
    return Math.max(1, new Set(nc.info?.connect_urls ?? []).size);
  }

  /** Reconnections since `connect`. */
  get reconnects(): number {
    return this.reconnectCount;
  }

  publish(subject: string, data: Uint8Array): void {
    if (this.closing) return;
    try {
      this.nc.publish(subject, data);
    } catch (err) {
      // Closed under us: publishing then drops the message, as the embedded transport does.
      if (!(err instanceof ClosedConnectionError || err instanceof DrainingConnectionError)) throw err;
    }
  }

  subscribe(subject: string, handler: MessageHandler): Subscription {
    if (this.closing) return noop;
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) {
          this.log?.warn({ subject, err }, 'subscription error');
          return;
        }
        try {
          handler(msg.data, msg.subject);
        } catch (error) {
          this.log?.warn({ subject: msg.subject, err: error }, 'message handler threw');
        }
      },
    });
    return { unsubscribe: () => this.unsubscribe(sub) };
  }

  /** A handler that throws (or rejects) sends no reply: the requester times out, and the error is logged. */
  serve(subject: string, handler: RequestHandler, options?: { queue?: string }): Subscription {
    if (this.closing) return noop;
    const sub = this.nc.subscribe(subject, {
      ...(options?.queue !== undefined ? { queue: options.queue } : {}),
      callback: (err, msg) => {
        if (err) {
          this.log?.warn({ subject, err }, 'responder subscription error');
          return;
        }
        Promise.resolve()
          .then(() => handler(msg.data, msg.subject))
          .then(
            (reply) => {
              if (reply === null) return;
              try {
                msg.respond(reply);
              } catch (error) {
                this.log?.warn({ subject: msg.subject, err: error }, 'reply not sent: connection closing');
              }
            },
            (error: unknown) => this.log?.warn({ subject: msg.subject, err: error }, 'request handler failed; no reply sent'),
          );
      },
    });
    return {
      unsubscribe: () => this.unsubscribe(sub),
      drain: async () => {
        if (this.nc.isClosed() || sub.isClosed()) return;
        // A drain waits for the server; while the connection is down it could wait for as
        // long as the outage, holding up the hand-over: past a bound, just unsubscribe.
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, DRAIN_BOUND_MS)));
        await Promise.race([sub.drain().catch(() => undefined), bound]);
        clearTimeout(timer);
        this.unsubscribe(sub);
      },
    };
  }

  async request(subject: string, data: Uint8Array, options: { timeoutMs: number }): Promise<Uint8Array> {
    if (this.closing) throw new TransportClosedError(subject);
    try {
      const msg = await this.nc.request(subject, data, { timeout: options.timeoutMs });
      return msg.data;
    } catch (err) {
      if (err instanceof RequestError && err.isNoResponders()) throw new NoRespondersError(subject, { cause: err });
      if (err instanceof TimeoutError) throw new RequestTimeoutError(subject, options.timeoutMs, { cause: err });
      if (err instanceof ClosedConnectionError || err instanceof DrainingConnectionError) {
        throw new TransportClosedError(subject, { cause: err });
      }
      throw err;
    }
  }

  /** Opens the bucket, creating it with the transport's `replicas`; concurrent calls share one open. */
  kv(bucket: string, options: KvOptions = {}): Promise<KvBucket> {
    let opening = this.buckets.get(bucket);
    if (!opening) {
      opening = openNatsKv(this.kvm, bucket, {
        ...options,
        replicas: this.replicas,
        ...(this.log ? { log: this.log } : {}),
      });
      this.buckets.set(bucket, opening);
      opening.catch(() => this.buckets.delete(bucket));
    }
    return opening;
  }

  async flush(): Promise<void> {
    await this.nc.flush();
  }

  writePending(): void {
    if (!this.closing) this.held?.writeNow();
  }

  /** Drains (pending replies and published messages go out first), then closes; bounded by `timeoutMs`. */
  close(timeoutMs = 5_000): Promise<void> {
    this.closing ??= this.drain(timeoutMs);
    return this.closing;
  }

  private async drain(timeoutMs: number): Promise<void> {
    if (this.nc.isClosed()) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      const outcome = await Promise.race([this.nc.drain().catch((err: unknown) => err), timedOut]);
      if (outcome === 'timeout') this.log?.warn({ timeoutMs }, 'NATS drain timed out; closing');
      else if (outcome instanceof Error && !(outcome instanceof ClosedConnectionError || outcome instanceof DrainingConnectionError)) {
        this.log?.warn({ err: outcome }, 'NATS drain failed; closing');
      }
    } finally {
      clearTimeout(timer);
    }
    if (!this.nc.isClosed()) await this.nc.close().catch(() => undefined);
  }

  private unsubscribe(sub: { unsubscribe(): void }): void {
    if (this.nc.isClosed()) return;
    try {
      sub.unsubscribe();
    } catch {
      // Draining or closed: the subscription ends with the connection.
    }
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      switch (s.type) {
        case 'disconnect':
          this.log?.warn({ server: s.server }, 'NATS disconnected; reconnecting');
          break;
        case 'reconnect':
          this.reconnectCount++;
          this.log?.info({ server: s.server, reconnects: this.reconnectCount }, 'NATS reconnected');
          break;
        case 'ldm':
          this.log?.info({ server: s.server }, 'NATS server entering lame duck mode');
          break;
        case 'error':
          this.log?.warn({ err: s.error }, 'NATS server error');
          break;
        case 'staleConnection':
          this.log?.warn({}, 'NATS connection stale; reconnecting');
          break;
        case 'slowConsumer':
          this.log?.warn({ subject: s.sub.getSubject(), pending: s.pending }, 'NATS slow consumer');
          break;
        default:
          break;
      }
    }
  }
}
