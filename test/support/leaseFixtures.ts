import type { ShardServer } from '../../src/cluster/shardLeases.js';
import type { KvBucket, KvEntry, KvWatchEvent, Subscription } from '../../src/cluster/transport/types.js';

/**
 * What the shard-lease race tests (cluster-acquire-race, cluster-cut-loose-step) hold a node's
 * calls with: a `leases` bucket whose chosen writes, and a shard server whose chosen releases,
 * answer only when the test lets them, so each interleaving is driven exactly and nothing sleeps.
 */

/** A call held by the test: it was made (`reached`), and answers once `release`d (`answered`). */
export interface Hold {
  readonly reached: Promise<void>;
  readonly answered: Promise<void>;
  release(): void;
}

/** A `Hold` with the fixture's side of it: `reach` when the call is made, wait for `gate`, `answer` once it has. */
interface PendingHold extends Hold {
  reach(): void;
  answer(): void;
  readonly gate: Promise<void>;
}

/** One hold, shared by the held bucket and the held release so both signal in the same way. */
function makeHold(): PendingHold {
  let reach!: () => void;
  let answer!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((resolve) => (reach = resolve));
  const answered = new Promise<void>((resolve) => (answer = resolve));
  const gate = new Promise<void>((resolve) => (release = resolve));
  return { reached, answered, release, reach, answer, gate };
}

/**
 * A node's `leases` bucket whose next claim write (`create` / `update`) or `delete` of a key
 * can be held, to put another step, a drain, a fence or another node's write between a lease
 * call and its answer. `committed`: the write is in the bucket (its watch event on its way)
 * before `reached` fires, and only its answer is late, as when JetStream took it and the
 * acknowledgement is late; otherwise `reached` fires first and the write itself waits.
 */
export class HeldBucket implements KvBucket {
  private readonly holds = new Map<string, { committed: boolean; hold: PendingHold }>();

  constructor(private readonly inner: KvBucket) {}

  hold(op: 'claim' | 'delete', key: string, { committed }: { committed: boolean }): Hold {
    const hold = makeHold();
    this.holds.set(`${op} ${key}`, { committed, hold });
    return hold;
  }

  create(key: string, value: Uint8Array): Promise<number> {
    return this.held(`claim ${key}`, () => this.inner.create(key, value));
  }
  update(key: string, value: Uint8Array, revision: number): Promise<number> {
    return this.held(`claim ${key}`, () => this.inner.update(key, value, revision));
  }
  delete(key: string, revision?: number): Promise<void> {
    return this.held(`delete ${key}`, () => this.inner.delete(key, revision));
  }

  private async held<T>(name: string, call: () => Promise<T>): Promise<T> {
    const pending = this.holds.get(name);
    if (!pending) return call();
    this.holds.delete(name);
    const { committed, hold } = pending;
    const settle = () => call().then((value) => ({ value }), (error: unknown) => ({ error }));
    const early = committed ? await settle() : undefined;
    hold.reach();
    await hold.gate;
    const outcome = early ?? (await settle());
    hold.answer();
    if ('error' in outcome) throw outcome.error;
    return outcome.value;
  }

  get(key: string): Promise<KvEntry | null> {
    return this.inner.get(key);
  }
  put(key: string, value: Uint8Array): Promise<number> {
    return this.inner.put(key, value);
  }
  erase(key: string, revision?: number): Promise<void> {
    return this.inner.erase(key, revision);
  }
  keys(filter?: string): Promise<string[]> {
    return this.inner.keys(filter);
  }
  watch(handler: (event: KvWatchEvent) => void): Promise<Subscription> {
    return this.inner.watch(handler);
  }
}

export type ServerOp = 'acquire' | 'release' | 'drop';

/**
 * Stands in for the shard host under `ShardLeases`: records what the leases ask of it and
 * which shards it serves now, so a test can check no shard is served twice. `onAcquire` sees
 * each acquire before the shard counts as served. A release stops serving at once and may then
 * be held (`holdRelease`), as `ShardHost.release` unsubscribes first and then persists the actors.
 */
export class FakeServer implements ShardServer {
  readonly serving = new Set<number>();
  readonly calls: Array<{ op: ServerOp; shard: number }> = [];
  private readonly releases = new Map<number, PendingHold>();

  constructor(private readonly onAcquire: (shard: number) => void = () => undefined) {}

  holdRelease(shard: number): Hold {
    const hold = makeHold();
    this.releases.set(shard, hold);
    return hold;
  }

  async acquire(shard: number): Promise<void> {
    this.calls.push({ op: 'acquire', shard });
    this.onAcquire(shard);
    this.serving.add(shard);
  }
  async release(shard: number): Promise<void> {
    this.calls.push({ op: 'release', shard });
    this.serving.delete(shard);
    const hold = this.releases.get(shard);
    if (!hold) return;
    this.releases.delete(shard);
    hold.reach();
    await hold.gate;
    hold.answer();
  }
  drop(shard: number): void {
    this.calls.push({ op: 'drop', shard });
    this.serving.delete(shard);
  }
  callsFor(shard: number): ServerOp[] {
    return this.calls.filter((c) => c.shard === shard).map((c) => c.op);
  }
}
