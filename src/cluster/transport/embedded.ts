import { NoRespondersError, RequestTimeoutError, TransportClosedError } from './errors.js';
import { MemoryKvBucket } from './memoryKv.js';
import { isWildcard, subjectMatches } from './subjectMatch.js';
import type { KvBucket, KvOptions, MessageHandler, RequestHandler, Subscription, Transport } from './types.js';

interface Responder {
  handler: RequestHandler;
}

const SILENT = Symbol('no reply');

/** A responder's own failure if one failed, else "no responders": in process, nobody answering is nobody serving. */
function failureOf(failed: AggregateError, subject: string): unknown {
  return failed.errors.find((error) => error !== SILENT) ?? new NoRespondersError(subject);
}

/**
 * The transport of a single node with no NATS: subjects and buckets live in this
 * process. Delivery is asynchronous (a microtask per message), as over a network,
 * so code written against it does not come to rely on re-entrant synchronous calls.
 */
export class EmbeddedTransport implements Transport {
  readonly kind = 'embedded';
  private readonly exact = new Map<string, Set<MessageHandler>>();
  private readonly wildcard = new Set<{ pattern: string; handler: MessageHandler }>();
  private readonly responders = new Map<string, Responder[]>();
  private readonly buckets = new Map<string, MemoryKvBucket>();
  private closed = false;

  publish(subject: string, data: Uint8Array): void {
    if (this.closed) return;
    const handlers = this.exact.get(subject);
    if (handlers) for (const handler of handlers) queueMicrotask(() => handler(data, subject));
    for (const sub of this.wildcard) {
      if (subjectMatches(sub.pattern, subject)) queueMicrotask(() => sub.handler(data, subject));
    }
  }

  subscribe(subject: string, handler: MessageHandler): Subscription {
    if (isWildcard(subject)) {
      const entry = { pattern: subject, handler };
      this.wildcard.add(entry);
      return { unsubscribe: () => this.wildcard.delete(entry) };
    }
    let handlers = this.exact.get(subject);
    if (!handlers) this.exact.set(subject, (handlers = new Set()));
    const own = (data: Uint8Array, s: string) => handler(data, s);
    handlers.add(own);
    return {
      unsubscribe: () => {
        handlers.delete(own);
        if (handlers.size === 0 && this.exact.get(subject) === handlers) this.exact.delete(subject);
      },
    };
  }

  serve(subject: string, handler: RequestHandler): Subscription {
    const responder = { handler };
    const list = this.responders.get(subject) ?? [];
    list.push(responder);
    this.responders.set(subject, list);
    return {
      unsubscribe: () => {
        const remaining = (this.responders.get(subject) ?? []).filter((r) => r !== responder);
        if (remaining.length) this.responders.set(subject, remaining);
        else this.responders.delete(subject);
      },
    };
  }

  async request(subject: string, data: Uint8Array, options: { timeoutMs: number }): Promise<Uint8Array> {
    const list = this.responders.get(subject);
    if (this.closed) throw new TransportClosedError(subject);
    if (!list || list.length === 0) throw new NoRespondersError(subject);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RequestTimeoutError(subject, options.timeoutMs)), options.timeoutMs);
    });
    try {
      // Every responder hears it, as on NATS without a queue group: one that lost the subject
      // to another stays silent (null) and must not hide the other's answer, nor spare it the run.
      const answers = list.map((responder) =>
        Promise.resolve()
          .then(() => responder.handler(data, subject))
          .then((reply) => reply ?? Promise.reject(SILENT)),
      );
      return await Promise.race([Promise.any(answers).catch((failed: AggregateError) => Promise.reject(failureOf(failed, subject))), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async kv(bucket: string, options?: KvOptions): Promise<KvBucket> {
    let kv = this.buckets.get(bucket);
    if (!kv) this.buckets.set(bucket, (kv = new MemoryKvBucket(bucket, options)));
    return kv;
  }

  async flush(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.exact.clear();
    this.wildcard.clear();
    this.responders.clear();
  }
}
