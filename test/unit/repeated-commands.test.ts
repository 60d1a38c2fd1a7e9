import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { decode, encode } from '../../src/cluster/codec.js';
import { REPEAT_AFTER_MS, REPLIES_KEPT_MS, type ShardCommand, type ShardReply } from '../../src/cluster/commands.js';
import { ReplyMemory } from '../../src/cluster/replyMemory.js';
import { ShardRouter } from '../../src/cluster/router.js';
import { SHARD_COUNT, shardOf } from '../../src/cluster/shards.js';
import { subjects } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import type { RequestHandler, Subscription } from '../../src/cluster/transport/types.js';
import { ErrorCode } from '../../src/errors.js';
import { FIXTURE_APP as APP, shardHostOn } from '../support/shardHostFixture.js';

/**
 * A command or its answer lost on the way (with a NATS server that stopped: the cluster
 * suite's 'stopping one NATS server of three' once had two calls wait out the router's 15 s
 * and fail 6012) is sent again after a short silence, and the owner answers the repeat from
 * what it already answered, so the command runs once.
 */

const NEVER = new Promise<null>(() => undefined);
const subjectOf = (user: string) => subjects.shardCommand(shardOf(APP, user));
const setStatus = (user: string, deviceId: string, customStatus: string): ShardCommand =>
  ({ op: 'setCustomStatus', app: APP, user, deviceId, connId: `c-${deviceId}`, customStatus });
const login = (user: string, deviceId: string): ShardCommand =>
  ({ op: 'login', app: APP, user, deviceId, connId: `c-${deviceId}`, gatewayId: 'gw', platform: 'web', sigTime: 0 });

/** Answers of the shards' responders that a test can make go missing, after the command ran. */
class LossyTransport extends EmbeddedTransport {
  private lose: (() => void) | undefined;

  /** Loses the next answer; resolves once it is lost, its command having run. */
  loseNextAnswer(): Promise<void> {
    return new Promise((resolve) => (this.lose = resolve));
  }

  override serve(subject: string, handler: RequestHandler): Subscription {
    return super.serve(subject, async (data, s) => {
      const answer = await handler(data, s);
      const lost = this.lose;
      if (!lost) return answer;
      this.lose = undefined;
      lost();
      return NEVER;
    });
  }
}

/** One node's shard host serving every shard over `transport`, and a router of another node. */
async function ownerAndRouter(transport: EmbeddedTransport, repeatAfterMs: number) {
  const { shardHost } = await shardHostOn(transport, { nodeId: 'owner' });
  shardHost.serve(Array.from({ length: SHARD_COUNT }, (_, shard) => shard));
  // The request timeout is far beyond the test's own: only a repeat can answer in time.
  const router = new ShardRouter(transport, { requestTimeoutMs: 600_000, repeatAfterMs });
  return { shardHost, router };
}

/** A simulated clock as the timers of a `ReplyMemory`. */
function timerClock() {
  const clock = new SimulatedClock();
  return { clock, timers: { now: () => clock.now(), setTimeout: (fn: () => void, ms: number) => clock.setTimeout(fn, ms), clearTimeout: (id: unknown) => clock.clearTimeout(id as number) } };
}

describe('repeated commands', () => {
  it('router - a command whose request meets silence is sent again under the same request id, and its answer is taken', async () => {
    const transport = new EmbeddedTransport();
    const received: ShardCommand[] = [];
    transport.serve(subjectOf('alice'), (data) => {
      received.push(decode<ShardCommand>(data));
      // The first never reaches the owner's code (lost with a server); the repeat does.
      return received.length === 1 ? NEVER : encode({ ok: true } satisfies ShardReply);
    });
    const router = new ShardRouter(transport, { requestTimeoutMs: 600_000, repeatAfterMs: 20 });
    expect(await router.send(setStatus('alice', 'web', 'x'))).toEqual({ ok: true });
    expect(received).toHaveLength(2);
    expect(received[0]!.rid).toEqual(expect.any(String));
    expect(received[1]!.rid).toBe(received[0]!.rid);
    // Another call is another command, with an id of its own.
    await router.send(setStatus('alice', 'web', 'y'));
    expect(received[2]!.rid).not.toBe(received[0]!.rid);
    await transport.close();
  });

  it('router - a logout that meets silence is not sent again: it waits out the request timeout', async () => {
    const transport = new EmbeddedTransport();
    const received: string[] = [];
    transport.serve(subjectOf('bob'), (data) => {
      received.push(decode<ShardCommand>(data).op);
      return NEVER;
    });
    const router = new ShardRouter(transport, { requestTimeoutMs: 200, repeatAfterMs: 20 });
    const reply = await router.send({ op: 'logout', app: APP, user: 'bob', deviceId: 'web', connId: 'c-web' });
    expect(reply).toMatchObject({ ok: false, error: { code: ErrorCode.REQUEST_TIMEOUT } });
    expect(received).toEqual(['logout']);
    await transport.close();
  });

  it('owner - a repeat of a command whose answer was lost gets that answer, and does not undo what another device did in between', async () => {
    const transport = new LossyTransport();
    // Repeats come long after the other device's call, which takes a few turns of the event loop.
    const { shardHost, router } = await ownerAndRouter(transport, 250);
    expect(await router.send(login('alice', 'web'))).toMatchObject({ ok: true });
    expect(await router.send(login('alice', 'phone'))).toMatchObject({ ok: true });

    const answerLost = transport.loseNextAnswer();
    const lost = router.send(setStatus('alice', 'web', 'in a call'));
    await answerLost;
    expect(shardHost.resident(APP, 'alice')!.status.customStatus).toBe('in a call');
    // While the web device waits for its answer, the phone sets another status.
    const phone = await router.send(setStatus('alice', 'phone', 'listening to music'));
    expect(phone).toMatchObject({ ok: true, status: { customStatus: 'listening to music' } });

    const repeated = await lost;
    expect(repeated).toMatchObject({ ok: true, status: { customStatus: 'in a call' } });
    expect(shardHost.resident(APP, 'alice')!.status).toMatchObject({ customStatus: 'listening to music', version: phone.ok ? phone.status!.version : -1 });
    await shardHost.stop();
    await transport.close();
  });

  it('reply memory - a repeat arriving while the command runs joins that run', async () => {
    const { timers } = timerClock();
    const memory = new ReplyMemory(1_000, timers);
    let runs = 0;
    let finish: (reply: ShardReply) => void = () => undefined;
    const run = () => {
      runs++;
      return new Promise<ShardReply>((resolve) => (finish = resolve));
    };
    const first = memory.answer('r1', run);
    const repeat = memory.answer('r1', run);
    finish({ ok: true });
    expect(await first).toEqual({ ok: true });
    expect(await repeat).toEqual({ ok: true });
    expect(await memory.answer('r1', run)).toEqual({ ok: true });
    expect(runs).toBe(1);
  });

  it('reply memory - silence, "moved" and failures are not given again: a repeat runs', async () => {
    const { timers } = timerClock();
    const memory = new ReplyMemory(1_000, timers);
    const moved: ShardReply = { ok: false, moved: true, error: { code: ErrorCode.REQUEST_TIMEOUT, desc: 'moved' } };
    await memory.answer('silent', async () => null);
    await memory.answer('moved', async () => moved);
    await expect(memory.answer('failed', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(memory.size).toBe(0);
    expect(await memory.answer('moved', async () => ({ ok: true }))).toEqual({ ok: true });
  });

  it('reply memory - answers are kept at least the time given and at most twice it, then nothing is held', async () => {
    const { clock, timers } = timerClock();
    const memory = new ReplyMemory(1_000, timers);
    let runs = 0;
    const run = async (): Promise<ShardReply> => {
      runs++;
      return { ok: true };
    };
    await memory.answer('early', run);
    clock.increment(900);
    await memory.answer('late', run);
    clock.increment(1_000); // 1.9 s after 'early', 1 s after 'late'
    await memory.answer('early', run);
    await memory.answer('late', run);
    expect(runs).toBe(2);
    clock.increment(1_000);
    expect(memory.size).toBe(0);
    await memory.answer('late', run);
    expect(runs).toBe(3);
    clock.increment(1_000);
    expect(memory.size).toBe(1);
    clock.increment(1_000);
    expect(memory.size).toBe(0);
  });

  it('reply memory - a repeat of a command still running past the keeping time joins it, and one after its answer gets that answer', async () => {
    // A KV write waiting out a JetStream leader election, the very case the repeats are for, can
    // outlast the keeping time: the answer is kept from when it is given, not from the run's start.
    const { clock, timers } = timerClock();
    const memory = new ReplyMemory(REPLIES_KEPT_MS, timers);
    await memory.answer('other', async () => ({ ok: true })); // arms the rotation now
    clock.increment(REPEAT_AFTER_MS);

    let runs = 0;
    let finish: (reply: ShardReply) => void = () => undefined;
    const slow = () => {
      runs++;
      return new Promise<ShardReply>((resolve) => (finish = resolve));
    };
    const first = memory.answer('r', slow);
    for (let i = 0; i < 3; i++) {
      clock.increment(REPEAT_AFTER_MS);
      void memory.answer('r', slow); // the router's repeats while the write is slow
    }
    expect(runs).toBe(1);

    finish({ ok: true, status: { userID: 'u', statusType: 1, customStatus: 'x', version: 7 } } as ShardReply);
    await first;
    // The answer was lost; the next repeat comes at most REPEAT_AFTER_MS later.
    clock.increment(REPEAT_AFTER_MS);
    expect(await memory.answer('r', slow)).toEqual(await first);
    expect(runs).toBe(1);
    memory.stop();
  });

  it('reply memory - holds nothing once stopped, also of a run that settles after the stop', async () => {
    const { clock, timers } = timerClock();
    const memory = new ReplyMemory(REPLIES_KEPT_MS, timers);
    let finish: (reply: ShardReply) => void = () => undefined;
    const answer = memory.answer('r', () => new Promise<ShardReply>((resolve) => (finish = resolve)));
    memory.stop();
    finish({ ok: true });
    await answer;
    expect(memory.size).toBe(0);
    clock.increment(10 * REPLIES_KEPT_MS);
    expect(memory.size).toBe(0);
  });
});
