import type { Logger } from '../log.js';
import { retryDelayMs } from './outbox.js';
import { SIGNATURE_HEADER, signWebhook } from './signature.js';
import type { WebhookEvent } from './stateChange.js';

/** Where and how one user's next event goes. */
export interface PendingWebhook {
  event: WebhookEvent;
  url: string;
  secretKey: string;
}

export interface WebhookDispatcherDeps {
  /** The oldest undelivered event of a user, if its app has a callback URL. */
  next(userKey: string): PendingWebhook | undefined;
  /** Removes the delivered event from the user's durable outbox. */
  delivered(userKey: string, eventId: string): Promise<void>;
  log: Logger;
  onResult?(result: 'ok' | 'failed'): void;
  /** How long one POST may take. Default 5 s. */
  timeoutMs?: number;
  /** How many users' POSTs may be under way at once; the others wait their turn. Default 32. */
  maxConcurrent?: number;
  post?: (url: string, body: string, headers: Record<string, string>, timeoutMs: number) => Promise<number>;
}

export interface DeliveryState {
  failures: number;
  lastError?: string;
  nextAttemptAt?: number;
}

async function httpPost(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<number> {
  const response = await fetch(url, { method: 'POST', body, headers, signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
  await drain(response.body).catch(() => undefined);
  return response.status;
}

/**
 * Only the status counts. A short answer is read to its end, so the connection is kept for
 * the next event; a huge or endless one is cut off instead of filling memory until the timeout.
 */
async function drain(body: ReadableStream<Uint8Array> | null, maxBytes = 65_536): Promise<void> {
  if (!body) return;
  const reader = body.getReader();
  for (let read = 0; read <= maxBytes; ) {
    const { done, value } = await reader.read();
    if (done) return;
    read += value.byteLength;
  }
  await reader.cancel();
}

/**
 * Sends each user's webhook events one at a time, oldest first, so a receiver sees
 * them in order per user; an event leaves the outbox only after a 2xx, so across a
 * node's death the next owner sends it again (at least once; `EventId` tells repeats).
 * A failing user is retried with backoff without holding up the others.
 */
export class WebhookDispatcher {
  private readonly running = new Map<string, { cancelled: boolean }>();
  /** Users kicked while `maxConcurrent` POSTs were under way, in the order they came. */
  private readonly waiting = new Set<string>();
  /** Runs under way, cancelled ones included until their POST is over. */
  private active = 0;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly states = new Map<string, DeliveryState>();
  private readonly post: NonNullable<WebhookDispatcherDeps['post']>;
  private readonly maxConcurrent: number;
  private stopped = false;

  constructor(private readonly deps: WebhookDispatcherDeps) {
    this.post = deps.post ?? httpPost;
    this.maxConcurrent = deps.maxConcurrent ?? 32;
  }

  /** Starts delivering a user's outbox now, unless already delivering or waiting to retry. */
  kick(userKey: string): void {
    if (this.stopped || this.running.has(userKey) || this.timers.has(userKey)) return;
    // A slow receiver would otherwise get one connection per user with a change, until the node runs out of sockets.
    if (this.active >= this.maxConcurrent) {
      this.waiting.add(userKey);
      return;
    }
    void this.run(userKey);
  }

  /** Forgets a user whose actor left this node (its outbox is durable; the next owner goes on). */
  cancel(userKey: string): void {
    const run = this.running.get(userKey);
    if (run) run.cancelled = true;
    this.running.delete(userKey);
    this.waiting.delete(userKey);
    clearTimeout(this.timers.get(userKey));
    this.timers.delete(userKey);
    this.states.delete(userKey);
  }

  stateOf(userKey: string): DeliveryState | undefined {
    return this.states.get(userKey);
  }

  /** Users whose latest attempt failed. */
  get failingUsers(): number {
    return this.states.size;
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.waiting.clear();
  }

  private async run(userKey: string): Promise<void> {
    const run = { cancelled: false };
    this.running.set(userKey, run);
    this.active += 1;
    try {
      for (let pending = this.deps.next(userKey); pending && !this.stopped && !run.cancelled; pending = this.deps.next(userKey)) {
        const error = await this.attempt(pending);
        // The outbox is durable: whoever holds the user next sends the event again.
        if (this.stopped || run.cancelled) return;
        if (error === undefined) {
          this.states.delete(userKey);
          this.deps.onResult?.('ok');
          await this.deps.delivered(userKey, pending.event.id);
          continue;
        }
        this.deps.onResult?.('failed');
        const state = this.states.get(userKey) ?? { failures: 0 };
        state.failures += 1;
        state.lastError = error;
        const delay = retryDelayMs(state.failures);
        state.nextAttemptAt = Date.now() + delay;
        this.states.set(userKey, state);
        this.deps.log.warn({ userKey, eventId: pending.event.id, failures: state.failures, err: error, retryInMs: delay }, 'webhook not delivered; will retry');
        this.timers.set(
          userKey,
          setTimeout(() => {
            this.timers.delete(userKey);
            this.kick(userKey);
          }, delay),
        );
        return;
      }
      // Nothing left to send here (all delivered, or the app no longer has a callbackUrl).
      this.states.delete(userKey);
    } catch (error) {
      this.deps.log.error({ err: error, userKey }, 'webhook outbox not updated; will retry on the next change');
    } finally {
      this.active -= 1;
      if (this.running.get(userKey) === run) this.running.delete(userKey);
      for (const waiting of this.waiting) {
        if (this.active >= this.maxConcurrent) break;
        this.waiting.delete(waiting);
        this.kick(waiting);
      }
    }
  }

  /** One POST; `undefined` on a 2xx, else what went wrong. */
  private async attempt({ event, url, secretKey }: PendingWebhook): Promise<string | undefined> {
    const body = JSON.stringify(event.body);
    const headers = {
      'content-type': 'application/json',
      'idempotency-key': event.id,
      [SIGNATURE_HEADER]: signWebhook(secretKey, body, Date.now()),
    };
    try {
      const status = await this.post(url, body, headers, this.deps.timeoutMs ?? 5_000);
      return status >= 200 && status < 300 ? undefined : `HTTP ${status}`;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }
}
