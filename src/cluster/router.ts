import { ErrorCode } from '../errors.js';
import { decode, encode } from './codec.js';
import type { ShardCommand, ShardReply } from './commands.js';
import { shardOf } from './shards.js';
import { subjects } from './subjects.js';
import { NoRespondersError, RequestTimeoutError } from './transport/errors.js';
import type { Transport } from './transport/types.js';

export interface RouterOptions {
  /**
   * How long one request may wait for the owner's answer: longer than a KV call
   * may retry during a JetStream leader election (12 s), so a slow write still answers.
   */
  requestTimeoutMs?: number;
  /** How long "no responders" (the shard is between owners) is retried before 6012. */
  unownedRetryMs?: number;
}

/**
 * Sends a command to whichever node owns the user's shard. While a shard moves it
 * has no owner for a moment: that is retried with jittered backoff for a bounded
 * time, then answered 6012 like any other timeout.
 */
export class ShardRouter {
  private readonly requestTimeoutMs: number;
  private readonly unownedRetryMs: number;

  constructor(private readonly transport: Transport, options: RouterOptions = {}) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
    this.unownedRetryMs = options.unownedRetryMs ?? 12_000;
  }

  async send(command: ShardCommand): Promise<ShardReply> {
    const subject = subjects.shardCommand(shardOf(command.app, command.user));
    const data = encode(command);
    const giveUpAt = Date.now() + this.unownedRetryMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const reply = decode<ShardReply>(await this.transport.request(subject, data, { timeoutMs: this.requestTimeoutMs }));
        if (reply.ok || !reply.moved) return reply;
      } catch (error) {
        if (error instanceof RequestTimeoutError) return timedOut(`the owner of ${command.user} did not answer in ${this.requestTimeoutMs} ms`);
        if (!(error instanceof NoRespondersError)) throw error;
      }
      const delay = Math.random() * Math.min(1_000, 25 * 2 ** attempt);
      if (Date.now() + delay > giveUpAt) return timedOut(`no node serves the shard of ${command.user} right now; retry`);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

const timedOut = (desc: string): ShardReply => ({ ok: false, error: { code: ErrorCode.REQUEST_TIMEOUT, desc } });
