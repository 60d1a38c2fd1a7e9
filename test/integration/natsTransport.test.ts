import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { NatsTransport } from '../../src/cluster/transport/nats.js';
import { KvConflictError, NoRespondersError, RequestTimeoutError } from '../../src/cluster/transport/errors.js';
import type { KvWatchEvent } from '../../src/cluster/transport/types.js';
import { startNatsCluster, startNatsServer, type NatsCluster, type NatsServer } from '../support/natsContainers.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const bytes = (s: string): Uint8Array => enc.encode(s);
const text = (b: Uint8Array): string => dec.decode(b);

/** Rejects with `what` if `promise` has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Retries `fn` every `intervalMs` until it resolves; rejects with the last error after `timeoutMs`. */
async function eventually<T>(fn: () => Promise<T>, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() + intervalMs > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}

/** Collects values; `atLeast(n)` resolves once `n` arrived. */
function collector<T>() {
  const items: T[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  return {
    items,
    push(item: T) {
      items.push(item);
      for (const w of waiters.filter((w) => items.length >= w.n)) w.resolve();
    },
    atLeast(n: number, ms = 5_000): Promise<T[]> {
      if (items.length >= n) return Promise.resolve(items);
      return within(new Promise<T[]>((resolve) => waiters.push({ n, resolve: () => resolve(items) })), ms, `${n} items`);
    },
  };
}

const testLog = () => {
  const lines: Array<{ level: 'warn' | 'info'; msg: string; obj: object }> = [];
  return {
    lines,
    warn: (obj: object, msg: string) => void lines.push({ level: 'warn', msg, obj }),
    info: (obj: object, msg: string) => void lines.push({ level: 'info', msg, obj }),
  };
};

describe('nats transport against one server', () => {
  let server: NatsServer;
  let a: NatsTransport;
  let b: NatsTransport;
  const log = testLog();

  beforeAll(async () => {
    const started = Date.now();
    server = await startNatsServer();
    console.info(`nats server container started in ${Date.now() - started} ms`);
    a = await NatsTransport.connect({ servers: [server.url], name: 'test-a', log });
    b = await NatsTransport.connect({ servers: [server.url], name: 'test-b', log });
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await server?.stop();
  });

  it('nats transport - publish reaches exact and wildcard subscribers', async () => {
    const exact = collector<string>();
    const star = collector<string>();
    const tail = collector<string>();
    b.subscribe('ps.a.st', (data, subject) => exact.push(`${subject}=${text(data)}`));
    b.subscribe('ps.*.st', (data, subject) => star.push(`${subject}=${text(data)}`));
    b.subscribe('ps.>', (data, subject) => tail.push(`${subject}=${text(data)}`));
    await b.flush();

    a.publish('ps.a.st', bytes('1'));
    a.publish('ps.b.st', bytes('2'));
    a.publish('ps.b.c.d', bytes('3'));
    await a.flush();

    expect(await tail.atLeast(3)).toEqual(['ps.a.st=1', 'ps.b.st=2', 'ps.b.c.d=3']);
    expect(await star.atLeast(2)).toEqual(['ps.a.st=1', 'ps.b.st=2']);
    expect(exact.items).toEqual(['ps.a.st=1']);
  });

  it('nats transport - what one turn of the event loop publishes leaves in one write, across microtask checkpoints, or at once when asked', async () => {
    const got = collector<string>();
    b.subscribe('turn.>', (data) => got.push(text(data)));
    await b.flush();
    await a.flush();
    const transport = (a.nc as unknown as { protocol: { transport: { send(frame: Uint8Array): void } } }).protocol.transport;
    const send = transport.send.bind(transport);
    let writes = 0;
    transport.send = (frame) => {
      // Only writes carrying this test's messages: a PONG the server asked for may go alone.
      if (Buffer.from(frame).includes('PUB turn.')) writes++;
      send(frame);
    };
    try {
      // As a node's handlers do: each message handled ends in a checkpoint, where nats.js alone would write.
      for (let i = 0; i < 10; i++) {
        a.publish(`turn.${i}`, bytes(String(i)));
        await Promise.resolve();
      }
      expect(await got.atLeast(10)).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
      expect(writes).toBe(1);
      // A tick batch, itself at the end of a turn, has it written at once.
      a.publish('turn.10', bytes('10'));
      expect(writes).toBe(1);
      a.writePending();
      expect(writes).toBe(2);
      expect(await got.atLeast(11)).toHaveLength(11);
    } finally {
      transport.send = send;
    }
  });

  it('nats transport - unsubscribe stops delivery', async () => {
    const got = collector<string>();
    const sub = b.subscribe('unsub.x', (data) => got.push(text(data)));
    await b.flush();
    a.publish('unsub.x', bytes('before'));
    await got.atLeast(1);
    sub.unsubscribe();
    await b.flush();
    a.publish('unsub.x', bytes('after'));
    const fence = collector<string>();
    b.subscribe('unsub.fence', (data) => fence.push(text(data)));
    await b.flush();
    a.publish('unsub.fence', bytes('done'));
    await fence.atLeast(1);
    expect(got.items).toEqual(['before']);
  });

  it('nats transport - serve answers request with the handler bytes', async () => {
    b.serve('rr.echo', async (data, subject) => bytes(`${subject}:${text(data).toUpperCase()}`));
    await b.flush();
    const reply = await a.request('rr.echo', bytes('hello'), { timeoutMs: 2_000 });
    expect(text(reply)).toBe('rr.echo:HELLO');
  });

  it('nats transport - request without responders fails with NoRespondersError at once', async () => {
    const started = Date.now();
    const failure = await a.request('rr.nobody', bytes('x'), { timeoutMs: 10_000 }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(NoRespondersError);
    expect((failure as NoRespondersError).subject).toBe('rr.nobody');
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('nats transport - request to a silent responder fails with RequestTimeoutError', async () => {
    b.serve('rr.silent', () => new Promise<Uint8Array>(() => undefined));
    await b.flush();
    const started = Date.now();
    const failure = await a.request('rr.silent', bytes('x'), { timeoutMs: 300 }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(RequestTimeoutError);
    expect((failure as RequestTimeoutError).timeoutMs).toBe(300);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('nats transport - a throwing handler sends no reply and is logged', async () => {
    b.serve('rr.throws', () => {
      throw new Error('handler bug');
    });
    await b.flush();
    const failure = await a.request('rr.throws', bytes('x'), { timeoutMs: 300 }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(RequestTimeoutError);
    expect(log.lines.some((l) => l.level === 'warn' && l.msg.includes('no reply sent'))).toBe(true);
  });

  it('nats transport - a queue group serves each request once', async () => {
    const handled: string[] = [];
    const serveAs = (t: NatsTransport, who: string) =>
      t.serve('rr.queue', (data) => {
        handled.push(who);
        return bytes(`${who}:${text(data)}`);
      }, { queue: 'workers' });
    serveAs(a, 'a');
    serveAs(b, 'b');
    await Promise.all([a.flush(), b.flush()]);

    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => a.request('rr.queue', bytes(String(i)), { timeoutMs: 2_000 })),
    );
    await Promise.all([a.flush(), b.flush()]);
    expect(replies.map((r) => text(r).split(':')[1])).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
    expect(handled).toHaveLength(20);
  });

  it('nats transport - kv get of a missing key is null', async () => {
    const kv = await a.kv('t_missing');
    expect(await kv.get('nobody')).toBeNull();
  });

  it('nats transport - kv create and update are compare-and-set', async () => {
    const kv = await a.kv('t_cas');
    const r1 = await kv.create('k', bytes('v1'));
    await expect(kv.create('k', bytes('again'))).rejects.toBeInstanceOf(KvConflictError);
    const r2 = await kv.update('k', bytes('v2'), r1);
    expect(r2).toBeGreaterThan(r1);
    const stale = await kv.update('k', bytes('stale'), r1).catch((err: unknown) => err);
    expect(stale).toBeInstanceOf(KvConflictError);
    expect((stale as KvConflictError).expectedRevision).toBe(r1);
    await expect(kv.update('never', bytes('x'), r2)).rejects.toBeInstanceOf(KvConflictError);
    await expect(kv.update('k', bytes('x'), 0)).rejects.toBeInstanceOf(KvConflictError);
    const entry = await kv.get('k');
    expect(entry && { key: entry.key, value: text(entry.value), revision: entry.revision }).toEqual({
      key: 'k',
      value: 'v2',
      revision: r2,
    });
    const r3 = await kv.put('k', bytes('v3'));
    expect(r3).toBeGreaterThan(r2);
  });

  it('nats transport - kv delete honours the revision and frees the key for create', async () => {
    const kv = await a.kv('t_delete');
    const r1 = await kv.put('k', bytes('v1'));
    const r2 = await kv.put('k', bytes('v2'));
    await expect(kv.delete('k', r1)).rejects.toBeInstanceOf(KvConflictError);
    expect(text((await kv.get('k'))!.value)).toBe('v2');
    await kv.delete('k', r2);
    expect(await kv.get('k')).toBeNull();
    await expect(kv.delete('absent', 1)).rejects.toBeInstanceOf(KvConflictError);
    await kv.delete('absent');
    const r3 = await kv.create('k', bytes('v3'));
    expect(text((await kv.get('k'))!.value)).toBe('v3');
    expect(r3).toBeGreaterThan(r2);
  });

  it('nats transport - kv keys lists live keys only', async () => {
    const kv = await a.kv('t_keys');
    expect(await kv.keys()).toEqual([]);
    await kv.put('a', bytes('1'));
    await kv.put('b.c', bytes('2'));
    await kv.put('d', bytes('3'));
    await kv.delete('d');
    expect((await kv.keys()).sort()).toEqual(['a', 'b.c']);
  });

  it('nats transport - kv keys ends when the newest entries are erased while it lists them', async () => {
    // nats.js's listing ends on the message that leaves nothing pending, counted when it
    // starts: erased before it is delivered, that message never comes, and the listing waited
    // for it until the call gave up (a shard owner erases idle users' `active` entries while
    // a node taking a shard over lists them).
    const kv = await a.kv('t_keys_erased');
    const revisions: number[] = [];
    for (let i = 0; i < 20_000; i += 500) {
      revisions.push(...(await Promise.all(Array.from({ length: 500 }, (_, k) => kv.put(`k.${i + k}`, bytes('')))))) ;
    }
    let listing = true;
    const listed = kv.keys().finally(() => (listing = false));
    const erased = new Set<string>();
    while (listing && erased.size < 2_000) {
      const revision = revisions.pop()!;
      await kv.erase(`k.${revisions.length}`, revision);
      erased.add(`k.${revisions.length}`);
    }
    const keys = new Set(await listed);
    for (let i = 0; i < 20_000; i++) if (!erased.has(`k.${i}`)) expect(keys.has(`k.${i}`), `k.${i}`).toBe(true);
    for (const key of keys) expect(key.startsWith('k.')).toBe(true);
  }, 60_000);

  it('nats transport - kv erase leaves no delete marker, keeps a later revision, and ignores one already gone', async () => {
    const kv = await a.kv('t_erase');
    const jsm = await jetstreamManager(a.nc);
    const stored = async (): Promise<number> => (await jsm.streams.info('KV_t_erase')).state.messages;
    const r1 = await kv.put('k', bytes('v1'));
    const r2 = await kv.put('k', bytes('v2'));
    // r1 went when r2 replaced it (one revision per key): erasing it changes nothing.
    await kv.erase('k', r1);
    expect((await kv.get('k'))!.revision).toBe(r2);
    await kv.erase('k', r2);
    await kv.put('other', bytes('v3'));
    await kv.erase('other');
    await kv.erase('absent');
    expect(await kv.get('k')).toBeNull();
    expect(await kv.keys()).toEqual([]);
    expect(await stored()).toBe(0);
    // A deleted key, by contrast, stays in the stream as its marker.
    await kv.put('d', bytes('v4'));
    await kv.delete('d');
    expect(await stored()).toBe(1);
    expect(await kv.create('k', bytes('v5'))).toBeGreaterThan(r2);
  });

  it('nats transport - kv watch sees later puts and deletes, not earlier values', async () => {
    const kv = await a.kv('t_watch');
    await kv.put('early', bytes('0'));
    const events = collector<KvWatchEvent>();
    const sub = await (await b.kv('t_watch')).watch((e) => events.push(e));
    const r1 = await kv.put('late', bytes('1'));
    await kv.delete('late');
    await kv.put('early', bytes('2'));
    const seen = await events.atLeast(3);
    expect(seen.map((e) => (e.op === 'put' ? `put ${e.entry.key}=${text(e.entry.value)}@${e.entry.revision}` : `delete ${e.key}`))).toEqual([
      `put late=1@${r1}`,
      'delete late',
      `put early=2@${r1 + 2}`,
    ]);
    expect(seen[1]).toMatchObject({ op: 'delete', key: 'late', revision: r1 + 1 });

    sub.unsubscribe();
    await kv.put('after', bytes('3'));
    const fence = await (await b.kv('t_watch')).watch(() => undefined);
    fence.unsubscribe();
    expect(events.items).toHaveLength(3);
  });

  it('nats transport - kv bucket options ttl and history are accepted', async () => {
    const kv = await a.kv('t_ttl', { ttlMs: 1_000, history: 5 });
    await kv.put('k', bytes('v'));
    expect(text((await kv.get('k'))!.value)).toBe('v');
    // The bucket TTL drops the entry (no watch event on NATS 2.9): poll for it.
    await eventually(async () => {
      if ((await kv.get('k')) !== null) throw new Error('still there');
    }, 5_000, 200);
    const jsm = await jetstreamManager(a.nc);
    const info = await jsm.streams.info('KV_t_ttl');
    expect(info.config.max_age).toBe(1_000 * 1_000_000);
    expect(info.config.max_msgs_per_subject).toBe(5);
  });

  it('nats transport - close drains and later calls are harmless', async () => {
    const t = await NatsTransport.connect({ servers: [server.url] });
    expect(t.kind).toBe('nats');
    await t.close();
    await t.close();
    expect(() => t.publish('after.close', bytes('x'))).not.toThrow();
    expect(() => t.subscribe('after.close', () => undefined).unsubscribe()).not.toThrow();
    await expect(t.request('after.close', bytes('x'), { timeoutMs: 100 })).rejects.toBeInstanceOf(NoRespondersError);
  });
});

describe('nats transport against a 3-server cluster', () => {
  let cluster: NatsCluster;
  const transports: NatsTransport[] = [];
  const connectTo = async (servers: string[], name: string, log?: ReturnType<typeof testLog>) => {
    const t = await NatsTransport.connect({ servers, name, replicas: 3, reconnectTimeWaitMs: 250, reconnectJitterMs: 250, ...(log ? { log } : {}) });
    transports.push(t);
    return t;
  };
  const indexOf = (t: NatsTransport): number => cluster.urls.indexOf(`nats://${t.nc.getServer()}`);

  beforeAll(async () => {
    const started = Date.now();
    cluster = await startNatsCluster();
    console.info(`nats cluster (3 containers, JetStream ready) started in ${Date.now() - started} ms`);
  });

  afterAll(async () => {
    await Promise.all(transports.map((t) => t.close(1_000)));
    await cluster?.stop();
  });

  it('nats transport - nodes opening the same new R3 bucket at once, through different servers, all get it', async () => {
    // As every node of a new cluster does at start: one creates the stream while the others look it up.
    const opening = await Promise.all(cluster.urls.flatMap((url, i) => [0, 1].map((k) => connectTo([url], `opener-${i}-${k}`))));
    const buckets = await Promise.all(opening.map((t) => t.kv('t_opened_at_once')));
    await buckets[0]!.put('k', bytes('written by one'));
    for (const bucket of buckets) expect(text((await bucket.get('k'))!.value)).toBe('written by one');
  });

  it('nats transport - an R3 bucket keeps accepting writes after its leader server is killed', async () => {
    const t = await connectTo(cluster.urls, 'kv-writer');
    let started = Date.now();
    const kv = await t.kv('t_r3');
    console.info(`first R3 bucket created in ${Date.now() - started} ms`);
    const r1 = await kv.put('k', bytes('v1'));

    const jsm = await jetstreamManager(t.nc);
    const info = await jsm.streams.info('KV_t_r3');
    expect(info.config.num_replicas).toBe(3);
    const leader = cluster.servers.findIndex((s) => s.name === info.cluster?.leader);
    expect(leader).toBeGreaterThanOrEqual(0);

    // Killed, so its followers notice only when a raft election times out (4-9 s on
    // NATS 2.9; 4.1-7.5 s measured here): writes fail with KvUnavailableError meanwhile.
    await cluster.stopServer(leader);
    started = Date.now();
    const failures = new Set<string>();
    const r2 = await eventually(
      () => kv.update('k', bytes('v2'), r1).catch((err: unknown) => {
        failures.add((err as Error).name);
        throw err;
      }),
      15_000,
      100,
    );
    console.info(`write accepted ${Date.now() - started} ms after the stream leader was killed`);
    expect(r2).toBeGreaterThan(r1);
    expect([...failures].filter((name) => name !== 'KvUnavailableError')).toEqual([]);
    expect(text((await kv.get('k'))!.value)).toBe('v2');
    await expect(kv.update('k', bytes('stale'), r1)).rejects.toBeInstanceOf(KvConflictError);

    await cluster.startServer(leader);
    await cluster.waitForJetStream(60_000);
  });

  it('nats transport - request/reply keeps working after reconnecting to another server', async () => {
    const log = testLog();
    const responder = await connectTo(cluster.urls, 'responder', log);
    const first = indexOf(responder);
    expect(first).toBeGreaterThanOrEqual(0);
    const other = cluster.urls.filter((_, i) => i !== first);
    const requester = await connectTo(other, 'requester');

    responder.serve('rc.echo', (data) => bytes(`echo:${text(data)}`), { queue: 'rc' });
    await responder.flush();
    const before = await eventually(() => requester.request('rc.echo', bytes('1'), { timeoutMs: 1_000 }), 5_000);
    expect(text(before)).toBe('echo:1');

    await cluster.stopServer(first);
    await eventually(async () => {
      if (responder.reconnects < 1) throw new Error('not reconnected yet');
    }, 15_000, 100);
    expect(indexOf(responder)).not.toBe(first);
    expect(log.lines.some((l) => l.msg.includes('NATS disconnected'))).toBe(true);
    expect(log.lines.some((l) => l.msg.includes('NATS reconnected'))).toBe(true);

    const after = await eventually(() => requester.request('rc.echo', bytes('2'), { timeoutMs: 1_000 }), 10_000, 100);
    expect(text(after)).toBe('echo:2');

    await cluster.startServer(first);
    await cluster.waitForJetStream(60_000);
  });

  it('nats transport - buckets survive a stop and start of the whole cluster', async () => {
    const t = await connectTo(cluster.urls, 'whole-cluster');
    const kv = await t.kv('t_restart');
    const r1 = await eventually(() => kv.put('k', bytes('kept')), 10_000);

    for (let i = 0; i < cluster.servers.length; i++) await cluster.stopServer(i);
    const started = Date.now();
    await Promise.all(cluster.servers.map((_, i) => cluster.startServer(i)));
    // Electing a meta leader over restored state took 6-20 s here.
    await cluster.waitForJetStream(60_000);
    console.info(`whole cluster restarted and JetStream ready in ${Date.now() - started} ms`);

    const entry = await eventually(async () => {
      const e = await kv.get('k');
      if (!e) throw new Error('not readable yet');
      return e;
    }, 60_000, 200);
    expect({ value: text(entry.value), revision: entry.revision }).toEqual({ value: 'kept', revision: r1 });
    expect(await eventually(() => kv.update('k', bytes('again'), r1), 30_000, 200)).toBeGreaterThan(r1);
  });
});

describe('nats transport against a cluster that is still forming', () => {
  let cluster: NatsCluster | undefined;
  let transport: NatsTransport | undefined;

  afterAll(async () => {
    await transport?.close(1_000);
    await cluster?.stop();
  });

  it('nats transport - the first R3 bucket is created once the JetStream meta leader is elected', async () => {
    cluster = await startNatsCluster({ waitForJetStream: false });
    const log = testLog();
    transport = await NatsTransport.connect({ servers: cluster.urls, replicas: 3, log });
    const started = Date.now();
    const kv = await transport.kv('t_fresh');
    console.info(`first R3 bucket on a fresh cluster created in ${Date.now() - started} ms`);
    const revision = await kv.put('k', bytes('v'));
    expect((await kv.get('k'))?.revision).toBe(revision);
    const jsm = await jetstreamManager(transport.nc);
    expect((await jsm.streams.info('KV_t_fresh')).config.num_replicas).toBe(3);
  });
});
