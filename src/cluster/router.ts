import { randomBytes } from 'node:crypto';
import { ErrorCode } from '../errors.js';
import { decode, encode } from './codec.js';
import { REPEAT_AFTER_MS, type ShardCommand, type ShardReply } from './commands.js';
import { shardOf } from './shards.js';
import { subjects } from './subjects.js';
import { NoRespondersError, RequestTimeoutError, TransportClosedError } from './transport/errors.js';
import type { Transport } from './transport/types.js';

export interface RouterOptions {
  /**
   * How long one request may wait for the owner's answer: longer than a KV call
   * may retry during a JetStream leader election (12 s), so a slow write still answers.
   */
  requestTimeoutMs?: number;
  /** Silence after which a repeatable command's request is sent again, within `requestTimeoutMs`. */
  repeatAfterMs?: number;
  /** How long "no responders" (the shard is between owners) is retried before 6012. */
  unownedRetryMs?: number;
  /**
   * Whether the node holding `shard`'s claim (as this node knows it) is still alive, as a
   * probe to call later; undefined when this node holds it or on a single node.
   */
  holderOf?: (shard: number) => (() => boolean) | undefined;
  /** How often the holders of the shards with requests in flight are checked. Default 250 ms. */
  holderCheckMs?: number;
  /**
   * Calls the listener when this node learns that `shard`'s claim changed: a command
   * waiting to retry an unowned shard goes at once instead of at the end of its backoff.
   */
  onClaimChange?: (shard: number, listener: () => void) => () => void;
  /**
   * Runs the command on this node if it serves the shard, undefined if it does not: the
   * command and its reply then skip the transport and their encoding both ways (every
   * call of an embedded node, a third of a 3-node cluster's). The shard host's own KV
   * calls give up after 12 s, so a local run is bounded like a request.
   */
  local?: (command: ShardCommand) => Promise<ShardReply | null> | undefined;
}

/**
 * Commands sent again when they meet silence or the node they went to dies before answering.
 * The owner that answered them already answers a repeat from its `ReplyMemory`. A new owner
 * runs them on the state the dead one persisted, where a repeat changes nothing: a login
 * on the same connection is answered again, a status already set is left, a device gone
 * stays gone. A logout is not: repeated there, it would answer "not logged in".
 */
const REPEATABLE = new Set<ShardCommand['op']>([
  'login',
  'heartbeat',
  'disconnect',
  'setCustomStatus',
  'query',
  'subscribe',
  'unsubscribe',
  'kick',
  'inspect',
]);

const HOLDER_DIED = Symbol('holder died');

interface Watched {
  alive: () => boolean;
  died: () => void;
}

/**
 * Sends a command to whichever node owns the user's shard. While a shard moves it
 * has no owner for a moment: that is retried with jittered backoff for a bounded
 * time, then answered 6012 like any other timeout. A repeatable command is sent again,
 * under the same request id, after `repeatAfterMs` without an answer (a request or answer
 * lost with a NATS server that stopped is otherwise waited out for the whole request
 * timeout), and as soon as this node sees its owner dead.
 */
export class ShardRouter {
  private readonly requestTimeoutMs: number;
  private readonly repeatAfterMs: number;
  private readonly unownedRetryMs: number;
  /** Request ids are this router's prefix and a count: unique across the cluster's routers. */
  private readonly ridPrefix = `${randomBytes(6).toString('base64url')}.`;
  private sent = 0;
  private readonly watched = new Set<Watched>();
  private checkTimer: NodeJS.Timeout | undefined;

  constructor(private readonly transport: Transport, private readonly options: RouterOptions = {}) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
    this.repeatAfterMs = options.repeatAfterMs ?? REPEAT_AFTER_MS;
    this.unownedRetryMs = options.unownedRetryMs ?? 12_000;
  }

  async send(command: ShardCommand): Promise<ShardReply> {
    const shard = shardOf(command.app, command.user);
    const subject = subjects.shardCommand(shard);
    let data: Uint8Array | undefined;
    const repeatable = REPEATABLE.has(command.op);
    const giveUpAt = Date.now() + this.unownedRetryMs;
    for (let attempt = 0; ; attempt++) {
      const here = this.options.local?.(command);
      if (here) {
        // Handed over or moved on meanwhile: the owner is elsewhere, ask it over the transport.
        const reply = await here;
        if (reply && (reply.ok || !reply.moved)) return reply;
      }
      if (!data) {
        // Set on the caller's command, not on a copy: each call builds its own.
        if (repeatable) command.rid = this.ridPrefix + (++this.sent).toString(36);
        data = encode(command);
      }
      try {
        const answer = await this.ask(subject, data, repeatable, repeatable ? this.options.holderOf?.(shard) : undefined);
        if (answer !== HOLDER_DIED) {
          const reply = decode<ShardReply>(answer);
          if (reply.ok || !reply.moved) return reply;
        }
      } catch (error) {
        if (error instanceof RequestTimeoutError) return timedOut(`the owner of ${command.user} did not answer in ${this.requestTimeoutMs} ms`);
        // Nobody was asked, and nobody will be: retrying would hold the call for the whole window.
        if (error instanceof TransportClosedError) return timedOut("this node's connection is closed; retry on another node");
        if (!(error instanceof NoRespondersError)) throw error;
      }
      const delay = Math.random() * Math.min(1_000, 25 * 2 ** attempt);
      if (Date.now() + delay > giveUpAt) return timedOut(`no node serves the shard of ${command.user} right now; retry`);
      // A new claim starts the backoff over: its holder may subscribe a moment after the claim.
      if (await this.backOff(shard, delay)) attempt = -1;
    }
  }

  /** Waits `delayMs`, or less if the shard's claim changes meanwhile (then resolves true). */
  private backOff(shard: number, delayMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), delayMs);
      const stopListening = this.options.onClaimChange?.(shard, () => done(true));
      function done(claimed: boolean): void {
        clearTimeout(timer);
        stopListening?.();
        resolve(claimed);
      }
    });
  }

  /**
   * One command's request, sent again after each `repeatAfterMs` of silence if `repeat`,
   * until `requestTimeoutMs` in all; settles early with HOLDER_DIED if `alive` turns false.
   */
  private async ask(subject: string, data: Uint8Array, repeat: boolean, alive: (() => boolean) | undefined): Promise<Uint8Array | typeof HOLDER_DIED> {
    const giveUpAt = Date.now() + this.requestTimeoutMs;
    for (;;) {
      const left = giveUpAt - Date.now();
      try {
        return await this.askOnce(subject, data, repeat ? Math.min(this.repeatAfterMs, left) : left, alive);
      } catch (error) {
        if (!repeat || !(error instanceof RequestTimeoutError) || Date.now() >= giveUpAt) throw error;
      }
    }
  }

  private askOnce(subject: string, data: Uint8Array, timeoutMs: number, alive: (() => boolean) | undefined): Promise<Uint8Array | typeof HOLDER_DIED> {
    const request = this.transport.request(subject, data, { timeoutMs });
    if (!alive) return request;
    return new Promise((resolve, reject) => {
      const watch: Watched = { alive, died: () => resolve(HOLDER_DIED) };
      this.watch(watch);
      // The abandoned request still ends (answered late or timed out): settling twice is a no-op.
      void request.then(resolve, reject).finally(() => this.watched.delete(watch));
    });
  }

  private watch(watch: Watched): void {
    this.watched.add(watch);
    if (this.checkTimer) return;
    // One timer for every request in flight, running only while there are some.
    this.checkTimer = setInterval(() => {
      for (const w of this.watched) {
        if (w.alive()) continue;
        this.watched.delete(w);
        w.died();
      }
      if (this.watched.size === 0) {
        clearInterval(this.checkTimer);
        this.checkTimer = undefined;
      }
    }, this.options.holderCheckMs ?? 250);
    this.checkTimer.unref?.();
  }
}

const timedOut = (desc: string): ShardReply => ({ ok: false, error: { code: ErrorCode.REQUEST_TIMEOUT, desc } });
