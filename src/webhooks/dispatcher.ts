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
  post?: (url: string, body: string, headers: Record<string, string>, timeoutMs: number) => Promise<number>;
}

export interface DeliveryState {
  failures: number;
  lastError?: string;
  nextAttemptAt?: number;
}

async function httpPost(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<number> {
  const response = await fetch(url, { method: 'POST', body, headers, signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
  await response.arrayBuffer().catch(() => undefined);
  return response.status;
}

/**
 * Sends each user's webhook events one at a time, oldest first, so a receiver sees
 * them in order per user; an event leaves the outbox only after a 2xx, so across a
 * node's death the next owner sends it again (at least once; `EventId` tells repeats).
 * A failing user is retried with backoff without holding up the others.
 */
export class WebhookDispatcher {
  private readonly running = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly states = new Map<string, DeliveryState>();
  private readonly post: NonNullable<WebhookDispatcherDeps['post']>;
  private stopped = false;

  constructor(private readonly deps: WebhookDispatcherDeps) {
    this.post = deps.post ?? httpPost;
  }

  /** Starts delivering a user's outbox now, unless already delivering or waiting to retry. */
  kick(userKey: string): void {
    if (this.stopped || this.running.has(userKey) || this.timers.has(userKey)) return;
    void this.run(userKey);
  }

  /** Forgets a user whose actor left this node (its outbox is durable; the next owner goes on). */
  cancel(userKey: string): void {
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
  }

  private async run(userKey: string): Promise<void> {
    this.running.add(userKey);
    try {
      for (let pending = this.deps.next(userKey); pending && !this.stopped; pending = this.deps.next(userKey)) {
        const error = await this.attempt(pending);
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
    } catch (error) {
      this.deps.log.error({ err: error, userKey }, 'webhook outbox not updated; will retry on the next change');
    } finally {
      this.running.delete(userKey);
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
