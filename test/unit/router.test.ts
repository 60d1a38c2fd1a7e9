import { afterEach, describe, expect, it, vi } from 'vitest';
import { decode, encode } from '../../src/cluster/codec.js';
import type { ShardCommand, ShardReply } from '../../src/cluster/commands.js';
import { ShardRouter } from '../../src/cluster/router.js';
import { shardOf } from '../../src/cluster/shards.js';
import { subjects } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import { ErrorCode } from '../../src/errors.js';

const APP = 1400000001;
const subjectOf = (user: string) => subjects.shardCommand(shardOf(APP, user));
const setStatus = (user: string): ShardCommand => ({ op: 'setCustomStatus', app: APP, user, deviceId: 'd1', connId: 'c1', customStatus: 'x' });

/**
 * A shard whose owner takes a command and dies without answering, and the node that
 * takes the shard over: `ownerDies()` ends the old owner, as its peers come to see it.
 */
function shardMovingAfterADeath(transport: EmbeddedTransport, user: string) {
  const received = { dead: [] as string[], next: [] as string[] };
  let ownerAlive = true;
  let taken: (op: string) => void = () => undefined;
  const firstCommand = new Promise<string>((resolve) => (taken = resolve));
  const dead = transport.serve(subjectOf(user), (data) => {
    received.dead.push(decode<ShardCommand>(data).op);
    taken(decode<ShardCommand>(data).op);
    return new Promise<Uint8Array>(() => undefined); // never answers: the process is gone
  });
  return {
    received,
    firstCommand,
    alive: () => ownerAlive,
    ownerDies() {
      ownerAlive = false;
      dead.unsubscribe();
      transport.serve(subjectOf(user), async (data) => {
        received.next.push(decode<ShardCommand>(data).op);
        return encode({ ok: true, status: { userID: user } } as unknown as ShardReply);
      });
    },
  };
}

/** An owner of `user`'s shard on another node: records the ops it runs and answers `reply`. */
function remoteOwner(transport: EmbeddedTransport, user: string, reply: ShardReply = { ok: true } as ShardReply): string[] {
  const ran: string[] = [];
  transport.serve(subjectOf(user), async (data) => {
    ran.push(decode<ShardCommand>(data).op);
    return encode(reply);
  });
  return ran;
}

describe('shard router', () => {
  it('router - a command whose owner dies before answering is sent again to the next owner', async () => {
    const transport = new EmbeddedTransport();
    const shard = shardMovingAfterADeath(transport, 'alice');
    // The request timeout is far beyond the test's own: only a resend can answer in time.
    const router = new ShardRouter(transport, { requestTimeoutMs: 600_000, holderOf: () => shard.alive, holderCheckMs: 5 });
    const reply = router.send(setStatus('alice'));
    await shard.firstCommand;
    shard.ownerDies();
    expect(await reply).toMatchObject({ ok: true });
    expect(shard.received).toEqual({ dead: ['setCustomStatus'], next: ['setCustomStatus'] });
    await transport.close();
  });

  it('router - a logout is not sent again: it waits for its answer and times out', async () => {
    const transport = new EmbeddedTransport();
    const shard = shardMovingAfterADeath(transport, 'bob');
    const router = new ShardRouter(transport, { requestTimeoutMs: 300, holderOf: () => shard.alive, holderCheckMs: 5 });
    const reply = router.send({ op: 'logout', app: APP, user: 'bob', deviceId: 'd1', connId: 'c1' });
    await shard.firstCommand;
    shard.ownerDies();
    expect(await reply).toMatchObject({ ok: false, error: { code: ErrorCode.REQUEST_TIMEOUT } });
    expect(shard.received).toEqual({ dead: ['logout'], next: [] });
    await transport.close();
  });

  it('router - a command to a live owner is answered once, by it', async () => {
    const transport = new EmbeddedTransport();
    const seen = remoteOwner(transport, 'carol');
    const router = new ShardRouter(transport, { holderOf: () => () => true, holderCheckMs: 5 });
    expect(await router.send(setStatus('carol'))).toMatchObject({ ok: true });
    expect(seen).toEqual(['setCustomStatus']);
    await transport.close();
  });

  it('router - a command for a shard served here runs here, the very object, without a request', async () => {
    const transport = new EmbeddedTransport();
    const remote = remoteOwner(transport, 'dave');
    const ranHere: ShardCommand[] = [];
    const router = new ShardRouter(transport, {
      local: (command) => {
        ranHere.push(command);
        return Promise.resolve({ ok: true } as ShardReply);
      },
    });
    const command = setStatus('dave');
    expect(await router.send(command)).toMatchObject({ ok: true });
    expect(ranHere).toEqual([command]);
    expect(ranHere[0]).toBe(command);
    expect(remote).toEqual([]);
    await transport.close();
  });

  it('router - a command this node stopped serving in the meantime (moved, or silent) goes to the owner over the transport', async () => {
    const transport = new EmbeddedTransport();
    const remote = remoteOwner(transport, 'erin', { ok: true, status: { userID: 'erin' } } as unknown as ShardReply);
    const answers: Array<ShardReply | null> = [
      { ok: false, moved: true, error: { code: ErrorCode.REQUEST_TIMEOUT, desc: 'handed over' } },
      null,
    ];
    const router = new ShardRouter(transport, { local: () => Promise.resolve(answers.shift() ?? null) });
    expect(await router.send(setStatus('erin'))).toMatchObject({ ok: true, status: { userID: 'erin' } });
    expect(await router.send(setStatus('erin'))).toMatchObject({ ok: true, status: { userID: 'erin' } });
    expect(remote).toEqual(['setCustomStatus', 'setCustomStatus']);
    await transport.close();
  });

  describe('retrying a shard that nobody serves', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('router - a command waiting to retry an unowned shard goes at once when the shard is claimed, not at the end of its backoff', async () => {
      // The backoff's timers never fire: only the claim change can send the retry.
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const transport = new EmbeddedTransport();
      let claimed: () => void = () => undefined;
      let backingOff: () => void = () => undefined;
      const waiting = new Promise<void>((resolve) => (backingOff = resolve));
      const router = new ShardRouter(transport, {
        onClaimChange: (shard, listener) => {
          expect(shard).toBe(shardOf(APP, 'dave'));
          claimed = listener;
          backingOff();
          return () => (claimed = () => undefined);
        },
      });
      const reply = router.send(setStatus('dave'));
      await waiting;
      transport.serve(subjectOf('dave'), async () => encode({ ok: true } as ShardReply));
      claimed();
      expect(await reply).toMatchObject({ ok: true });
      await transport.close();
    });

    it('router - a retry that stops waiting stops listening for claim changes', async () => {
      const transport = new EmbeddedTransport();
      let listening = 0;
      let answered = false;
      const router = new ShardRouter(transport, {
        unownedRetryMs: 200,
        onClaimChange: () => {
          listening++;
          return () => listening--;
        },
      });
      const reply = await router.send(setStatus('erin')).finally(() => (answered = true));
      expect(answered).toBe(true);
      expect(reply).toMatchObject({ ok: false, error: { code: ErrorCode.REQUEST_TIMEOUT } });
      expect(listening).toBe(0);
      await transport.close();
    });
  });
});
