import { describe, expect, it } from 'vitest';
import { MemoryKvBucket } from '../../src/cluster/transport/memoryKv.js';

describe('in-process KV bucket', () => {
  it('memory kv - a stored value is a copy of its own size, not a view that keeps the writer\'s buffer alive', async () => {
    const bucket = new MemoryKvBucket('test');
    // As msgpackr returns them: a small view into a large shared buffer.
    const shared = Buffer.alloc(64 * 1024);
    shared.write('hello', 100);
    await bucket.put('k', shared.subarray(100, 105));
    shared.write('xxxxx', 100);
    const entry = await bucket.get('k');
    expect(Buffer.from(entry!.value).toString()).toBe('hello');
    expect(entry!.value.buffer.byteLength).toBe(5);
  });

  it('memory kv - erase removes the given revision without a watch event, and keeps a later one', async () => {
    const bucket = new MemoryKvBucket('test');
    const events: string[] = [];
    await bucket.watch((event) => events.push(event.op));
    const first = await bucket.put('k', new Uint8Array([1]));
    const second = await bucket.put('k', new Uint8Array([2]));
    await bucket.erase('k', first);
    expect((await bucket.get('k'))?.revision).toBe(second);
    await bucket.erase('k', second);
    expect(await bucket.get('k')).toBeNull();
    await bucket.put('other', new Uint8Array([3]));
    await bucket.erase('other');
    await bucket.erase('absent');
    expect(await bucket.keys()).toEqual([]);
    await new Promise<void>((resolve) => queueMicrotask(resolve));
    expect(events).toEqual(['put', 'put', 'put']);
  });
});
