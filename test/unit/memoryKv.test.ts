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
});
