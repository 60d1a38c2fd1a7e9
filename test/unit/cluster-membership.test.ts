import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_MEMBERSHIP_TIMING, Membership, type MemberRecord } from '../../src/cluster/membership.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import type { KvBucket, KvEntry, KvWatchEvent, Subscription } from '../../src/cluster/transport/types.js';

const { renewMs, deadAfterMs, fenceAfterMs } = DEFAULT_MEMBERSHIP_TIMING;

interface ManualClock {
  t: number;
  now(): number;
}

const makeClock = (): ManualClock => ({ t: 0, now() { return this.t; } });

/** Lets queued watch events (microtasks) reach every node. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A node's own link to the shared bucket; `down` cuts it off (every call rejects). */
class LinkBucket implements KvBucket {
  down = false;
  constructor(private readonly inner: KvBucket) {}
  private check(): void {
    if (this.down) throw new Error('connection to the KV store lost');
  }
  async get(key: string): Promise<KvEntry | null> {
    this.check();
    return this.inner.get(key);
  }
  async put(key: string, value: Uint8Array): Promise<number> {
    this.check();
    return this.inner.put(key, value);
  }
  async create(key: string, value: Uint8Array): Promise<number> {
    this.check();
    return this.inner.create(key, value);
  }
  async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    this.check();
    return this.inner.update(key, value, revision);
  }
  async delete(key: string, revision?: number): Promise<void> {
    this.check();
    return this.inner.delete(key, revision);
  }
  async keys(filter?: string): Promise<string[]> {
    this.check();
    return this.inner.keys(filter);
  }
  async watch(handler: (event: KvWatchEvent) => void): Promise<Subscription> {
    return this.inner.watch(handler);
  }
}

interface TestNode {
  id: string;
  incarnation: string;
  link: LinkBucket;
  membership: Membership;
}

let transport: EmbeddedTransport;
let started: Membership[] = [];

afterEach(async () => {
  for (const membership of started) membership.stop();
  started = [];
  await transport?.close();
});

async function setup(ids: string[]) {
  transport = new EmbeddedTransport();
  const bucket = await transport.kv('nodes');
  const clock = makeClock();
  const nodes = new Map<string, TestNode>();
  const startNode = async (id: string, incarnation = `${id}-inc-1`): Promise<TestNode> => {
    const link = new LinkBucket(bucket);
    const record: MemberRecord = { nodeId: id, incarnation, startedAt: clock.now(), shards: 0, actors: 0 };
    const membership = new Membership(link, record, clock, DEFAULT_MEMBERSHIP_TIMING);
    await membership.start();
    started.push(membership);
    const node = { id, incarnation, link, membership };
    nodes.set(id, node);
    return node;
  };
  for (const id of ids) await startNode(id);
  await flush();
  const node = (id: string): TestNode => nodes.get(id)!;
  /** Advances time by one renewal period, renewing only `renewing`. */
  const step = async (renewing: string[], ms = renewMs) => {
    clock.t += ms;
    await Promise.all(renewing.map((id) => node(id).membership.renew().catch(() => undefined)));
    await flush();
  };
  return { bucket, clock, node, startNode, step };
}

describe('membership', () => {
  it('membership - after start every node sees itself and the others, sorted', async () => {
    const { node } = await setup(['node-b', 'node-a', 'node-c']);
    for (const id of ['node-a', 'node-b', 'node-c']) {
      expect(node(id).membership.view(), id).toEqual(['node-a', 'node-b', 'node-c']);
    }
  });

  it('membership - a node that joins later appears in the view of those already running', async () => {
    const { node, startNode } = await setup(['node-a', 'node-b']);
    await startNode('node-c');
    await flush();
    expect(node('node-a').membership.view()).toEqual(['node-a', 'node-b', 'node-c']);
    expect(node('node-b').membership.view()).toEqual(['node-a', 'node-b', 'node-c']);
  });

  it('membership - onChange listeners hear about another node joining', async () => {
    const { node, startNode } = await setup(['node-a']);
    let calls = 0;
    node('node-a').membership.onChange(() => calls++);
    await startNode('node-b');
    await flush();
    expect(calls).toBeGreaterThan(0);
  });

  it('membership - a node that keeps renewing stays in the view of the others for longer than deadAfterMs', async () => {
    const { node, step } = await setup(['node-a', 'node-b', 'node-c']);
    for (let elapsed = 0; elapsed < deadAfterMs * 3; elapsed += renewMs) await step(['node-a', 'node-b', 'node-c']);
    expect(node('node-b').membership.view()).toEqual(['node-a', 'node-b', 'node-c']);
    expect(node('node-a').membership.isLive).toBe(true);
  });

  it('membership - a node not renewed for just under deadAfterMs is still in the view of the others', async () => {
    const { node, step } = await setup(['node-a', 'node-b', 'node-c']);
    await step(['node-b', 'node-c'], deadAfterMs - 1);
    expect(node('node-b').membership.view()).toContain('node-a');
    expect(node('node-c').membership.isAlive('node-a')).toBe(true);
  });

  it('membership - a node not renewed for deadAfterMs leaves the view of the others', async () => {
    const { node, step } = await setup(['node-a', 'node-b', 'node-c']);
    for (let elapsed = 0; elapsed < deadAfterMs; elapsed += renewMs) await step(['node-b', 'node-c']);
    expect(node('node-b').membership.view()).toEqual(['node-b', 'node-c']);
    expect(node('node-c').membership.view()).toEqual(['node-b', 'node-c']);
    expect(node('node-b').membership.isAlive('node-a')).toBe(false);
  });

  it('membership - a dead node that renews again comes back into the view', async () => {
    const { node, step } = await setup(['node-a', 'node-b']);
    for (let elapsed = 0; elapsed < deadAfterMs; elapsed += renewMs) await step(['node-b']);
    expect(node('node-b').membership.view()).toEqual(['node-b']);
    await step(['node-a', 'node-b']);
    expect(node('node-b').membership.view()).toEqual(['node-a', 'node-b']);
  });

  it('membership - a node whose renewals fail reports isLive false after fenceAfterMs', async () => {
    const { node, step } = await setup(['node-a', 'node-b']);
    const a = node('node-a');
    a.link.down = true;
    await step(['node-a', 'node-b'], fenceAfterMs - 1);
    expect(a.membership.isLive).toBe(true);
    await step(['node-a', 'node-b'], 1);
    expect(a.membership.isLive).toBe(false);
  });

  it('membership - a node whose renewals fail drops itself from its own view', async () => {
    const { node, step } = await setup(['node-a', 'node-b']);
    const a = node('node-a');
    a.link.down = true;
    for (let elapsed = 0; elapsed < fenceAfterMs; elapsed += renewMs) await step(['node-a', 'node-b']);
    expect(a.membership.view()).toEqual(['node-b']);
    expect(a.membership.isAlive('node-a')).toBe(false);
    expect(a.membership.records().map((r) => r.nodeId)).toEqual(['node-b']);
  });

  it('membership - a failed renewal surfaces its error to the caller', async () => {
    const { node } = await setup(['node-a']);
    node('node-a').link.down = true;
    await expect(node('node-a').membership.renew()).rejects.toThrow(/connection to the KV store lost/);
  });

  it('membership - a node whose link comes back is live again after its next renewal', async () => {
    const { node, step } = await setup(['node-a', 'node-b']);
    const a = node('node-a');
    a.link.down = true;
    await step(['node-a', 'node-b'], fenceAfterMs);
    expect(a.membership.isLive).toBe(false);
    a.link.down = false;
    await step(['node-a', 'node-b']);
    expect(a.membership.isLive).toBe(true);
    expect(a.membership.view()).toEqual(['node-a', 'node-b']);
  });

  it('membership - leave() removes the node from the views of the others at once', async () => {
    const { clock, node } = await setup(['node-a', 'node-b', 'node-c']);
    const before = clock.t;
    await node('node-a').membership.leave();
    await flush();
    expect(clock.t).toBe(before);
    expect(node('node-b').membership.view()).toEqual(['node-b', 'node-c']);
    expect(node('node-c').membership.view()).toEqual(['node-b', 'node-c']);
    expect(node('node-b').membership.isAlive('node-a')).toBe(false);
  });

  it('membership - a node that left is no longer live itself', async () => {
    const { node } = await setup(['node-a', 'node-b']);
    await node('node-a').membership.leave();
    expect(node('node-a').membership.isLive).toBe(false);
    expect(node('node-a').membership.view()).not.toContain('node-a');
  });

  it('membership - leave() deletes the node record from the bucket', async () => {
    const { bucket, node } = await setup(['node-a', 'node-b']);
    await node('node-a').membership.leave();
    expect(await bucket.get('node-a')).toBeNull();
    expect(await bucket.keys()).toEqual(['node-b']);
  });

  it('membership - isAlive is true for a live node with its current incarnation', async () => {
    const { node } = await setup(['node-a', 'node-b']);
    expect(node('node-b').membership.isAlive('node-a', 'node-a-inc-1')).toBe(true);
    expect(node('node-a').membership.isAlive('node-a', 'node-a-inc-1')).toBe(true);
  });

  it('membership - isAlive is false for a live node asked about another incarnation', async () => {
    const { node } = await setup(['node-a', 'node-b']);
    expect(node('node-b').membership.isAlive('node-a', 'node-a-inc-0')).toBe(false);
    expect(node('node-a').membership.isAlive('node-a', 'node-a-inc-0')).toBe(false);
  });

  it('membership - after a restart the earlier incarnation is no longer alive', async () => {
    const { node, startNode } = await setup(['node-a', 'node-b']);
    node('node-a').membership.stop();
    await startNode('node-a', 'node-a-inc-2');
    await flush();
    const b = node('node-b').membership;
    expect(b.isAlive('node-a', 'node-a-inc-1')).toBe(false);
    expect(b.isAlive('node-a', 'node-a-inc-2')).toBe(true);
    expect(b.view()).toEqual(['node-a', 'node-b']);
  });

  it('membership - isAlive is false for a node never seen', async () => {
    const { node } = await setup(['node-a']);
    expect(node('node-a').membership.isAlive('node-z')).toBe(false);
  });

  it('membership - a second process with the same node id makes renew throw a clear error', async () => {
    const { node, startNode } = await setup(['node-a', 'node-b']);
    const first = node('node-a').membership;
    await startNode('node-a', 'node-a-inc-other');
    await expect(first.renew()).rejects.toThrow(/node id node-a is in use by another process/);
  });
});
