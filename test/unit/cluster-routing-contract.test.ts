import { TimeoutError } from '@nats-io/transport-node';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { Bucket, KvEntry as NatsKvEntry } from '@nats-io/kv';
import { describe, expect, it } from 'vitest';
import { decode, encode } from '../../src/cluster/codec.js';
import type { ShardCommand, ShardReply } from '../../src/cluster/commands.js';
import { ShardRouter } from '../../src/cluster/router.js';
import { shardOf } from '../../src/cluster/shards.js';
import { subjects } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import { KvConflictError } from '../../src/cluster/transport/errors.js';
import { NatsKvBucket } from '../../src/cluster/transport/natsKv.js';
import type { Transport } from '../../src/cluster/transport/types.js';
import { ErrorCode } from '../../src/errors.js';

const APP = 1400000001;
const subjectOf = (user: string) => subjects.shardCommand(shardOf(APP, user));
const setStatus = (user: string): ShardCommand => ({ op: 'setCustomStatus', app: APP, user, deviceId: 'd1', connId: 'c1', customStatus: 'x' });

const wrongLastSequence = (revision: number) =>
  new JetStreamApiError({ err_code: JetStreamApiCodes.StreamWrongLastSequence, code: 400, description: `wrong last sequence: ${revision}` });

/**
 * The part of a nats.js KV bucket that `NatsKvBucket` writes through, over one key, whose
 * first write lands in the stream but whose acknowledgement is lost (JetStream's answer
 * times out, as during a stream leader election): what a retry of the same write then meets.
 */
function bucketLosingFirstAck() {
  let latest: { value: Uint8Array; revision: number; operation: 'PUT' | 'DEL' } | undefined;
  let lastSequence = 4;
  let acksLost = 1;
  const write = (value: Uint8Array, expected: number): number => {
    if ((latest?.revision ?? 0) !== expected) throw wrongLastSequence(latest?.revision ?? 0);
    latest = { value: new Uint8Array(value), revision: ++lastSequence, operation: 'PUT' };
    if (acksLost-- > 0) throw new TimeoutError();
    return latest.revision;
  };
  const fake = {
    get: async () => (latest ? ({ key: 'k', ...latest } as unknown as NatsKvEntry) : null),
    create: async (_key: string, value: Uint8Array) => write(value, 0),
    update: async (_key: string, value: Uint8Array, revision: number) => write(value, revision),
    delete: async (_key: string, options?: { previousSeq?: number }) => {
      const expected = options?.previousSeq;
      if (expected !== undefined && (latest?.revision ?? 0) !== expected) throw wrongLastSequence(latest?.revision ?? 0);
      latest = { value: new Uint8Array(0), revision: ++lastSequence, operation: 'DEL' };
      if (acksLost-- > 0) throw new TimeoutError();
    },
    seed(value: Uint8Array) {
      latest = { value, revision: ++lastSequence, operation: 'PUT' };
      return latest.revision;
    },
  };
  return fake;
}

/** A transport that reports each request it is asked to send. */
function countingRequests(inner: Transport, onRequest: (count: number) => void): Transport {
  let count = 0;
  return new Proxy(inner, {
    get(target, property, receiver) {
      if (property !== 'request') return Reflect.get(target, property, receiver);
      return (subject: string, data: Uint8Array, options: { timeoutMs: number }) => {
        onRequest(++count);
        return target.request(subject, data, options);
      };
    },
  });
}

describe('cluster routing contract', () => {
  describe('KV writes whose acknowledgement was lost', () => {
    it('nats kv - an update retried after a timeout that had landed is its own success, not a conflict', async () => {
      const fake = bucketLosingFirstAck();
      const seeded = fake.seed(encode({ version: 1 }));
      const bucket = new NatsKvBucket('pres_users', fake as unknown as Bucket);
      const value = encode({ version: 2 });
      const revision = await bucket.update('k', value, seeded);
      expect(revision).toBe(seeded + 1);
      expect((await bucket.get('k'))?.revision).toBe(revision);
    });

    it('nats kv - a create retried after a timeout that had landed is its own success, not a conflict', async () => {
      const fake = bucketLosingFirstAck();
      const bucket = new NatsKvBucket('pres_leases', fake as unknown as Bucket);
      const revision = await bucket.create('k', encode({ nodeId: 'n1' }));
      expect((await bucket.get('k'))?.revision).toBe(revision);
    });

    it('nats kv - a conditional delete retried after a timeout that had landed is its own success, not a conflict', async () => {
      const fake = bucketLosingFirstAck();
      const seeded = fake.seed(encode({ nodeId: 'n1' }));
      const bucket = new NatsKvBucket('pres_leases', fake as unknown as Bucket);
      await bucket.delete('k', seeded);
      expect(await bucket.get('k')).toBeNull();
    });

    it('nats kv - a conditional delete that meets another writer\'s value after a timeout is still a conflict', async () => {
      const fake = bucketLosingFirstAck();
      const seeded = fake.seed(encode({ nodeId: 'n1' }));
      const bucket = new NatsKvBucket('pres_leases', fake as unknown as Bucket);
      // Our first attempt times out without landing; another node takes the key meanwhile.
      fake.delete = async () => {
        fake.delete = async (_key, options) => {
          throw wrongLastSequence((options?.previousSeq ?? 0) + 1);
        };
        fake.seed(encode({ nodeId: 'n2' }));
        throw new TimeoutError();
      };
      await expect(bucket.delete('k', seeded)).rejects.toBeInstanceOf(KvConflictError);
      expect((await bucket.get('k'))?.revision).toBe(seeded + 1);
    });

    it('nats kv - an update that meets another writer\'s value after a timeout is still a conflict', async () => {
      const fake = bucketLosingFirstAck();
      const seeded = fake.seed(encode({ version: 1 }));
      const bucket = new NatsKvBucket('pres_users', fake as unknown as Bucket);
      const ours = encode({ version: 2, by: 'n1' });
      const theirs = encode({ version: 2, by: 'n2' });
      // Our first attempt times out without landing, another node writes meanwhile.
      fake.update = async () => {
        fake.update = async (_key, _value, revision) => {
          throw wrongLastSequence(revision + 1);
        };
        fake.seed(theirs);
        throw new TimeoutError();
      };
      await expect(bucket.update('k', ours, seeded)).rejects.toBeInstanceOf(KvConflictError);
    });
  });

  describe('KV watches that end', () => {
    it('nats kv - a watch that ends before its first event resumes after where it started, not from "now" again', async () => {
      const asked: unknown[] = [];
      let resumed!: () => void;
      const watchedAgain = new Promise<void>((resolve) => (resumed = resolve));
      // An iterator that ends at once, as nats.js's does once its consumer is lost for good.
      const ended = { [Symbol.asyncIterator]: async function* () {}, stop: () => undefined };
      const fake = {
        status: async () => ({ streamInfo: { state: { last_seq: 41 } } }),
        watch: async (options: unknown) => {
          asked.push(options);
          if (asked.length === 2) resumed();
          return ended;
        },
      };
      const bucket = new NatsKvBucket('pres_apps', fake as unknown as Bucket);
      const watch = await bucket.watch(() => undefined);
      await watchedAgain;
      watch.unsubscribe();
      // Changes made while it was down (from revision 42 on) are delivered, not skipped.
      expect(asked[1]).toMatchObject({ resumeFromRevision: 42 });
    });
  });

  describe('routing', () => {
    it('router - a command on a closed transport is answered 6012 at once, not retried as an unowned shard', async () => {
      const embedded = new EmbeddedTransport();
      embedded.serve(subjectOf('alice'), async () => encode({ ok: true } as ShardReply));
      await embedded.close();
      let retried: () => void = () => undefined;
      const retry = new Promise<'retried'>((resolve) => (retried = () => resolve('retried')));
      const transport = countingRequests(embedded, (count) => count > 1 && retried());
      // The retry window is far beyond the test's own: only an answer without retrying passes.
      const router = new ShardRouter(transport, { unownedRetryMs: 600_000 });
      const outcome = await Promise.race([router.send(setStatus('alice')), retry]);
      expect(outcome).toMatchObject({ ok: false, error: { code: ErrorCode.REQUEST_TIMEOUT } });
    });

    it('embedded - a request goes to every responder of a subject, as without a queue group on NATS: a silent one does not hide the owner', async () => {
      const transport = new EmbeddedTransport();
      const heard: string[] = [];
      // A node that lost the shard but still holds its subscription stays silent.
      transport.serve(subjectOf('bob'), (data) => {
        heard.push(`stale:${decode<ShardCommand>(data).op}`);
        return null;
      });
      transport.serve(subjectOf('bob'), async (data) => {
        heard.push(`owner:${decode<ShardCommand>(data).op}`);
        return encode({ ok: true } as ShardReply);
      });
      const reply = decode<ShardReply>(await transport.request(subjectOf('bob'), encode(setStatus('bob')), { timeoutMs: 600_000 }));
      expect(reply).toMatchObject({ ok: true });
      expect(heard.sort()).toEqual(['owner:setCustomStatus', 'stale:setCustomStatus']);
      await transport.close();
    });
  });
});
