import { describe, expect, it } from 'vitest';
import { fnv1a32, SHARD_COUNT, shardOf } from '../../src/cluster/shards.js';

/** The definition: FNV-1a over the bytes `TextEncoder` gives. */
function byEncodedBytes(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash >>> 0;
}

/** A seeded generator, so a failing string can be found again. */
function randomText(seed: number, length: number): string {
  let state = seed;
  const next = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 8);
  // Weighted towards the cases the byte loop branches on: ASCII, 2 and 3 bytes, pairs, lone halves.
  const pools = [() => next() % 0x80, () => 0x80 + (next() % 0x780), () => 0x800 + (next() % 0xd000), () => 0xe000 + (next() % 0x2000), () => 0xd800 + (next() % 0x800)];
  let text = '';
  for (let i = 0; i < length; i++) {
    const pick = next() % 6;
    text += pick === 5 ? String.fromCodePoint(0x10000 + (next() % 0xfffff)) : String.fromCharCode(pools[pick]!());
  }
  return text;
}

describe('shards', () => {
  // Nodes of different versions share a cluster during a rolling upgrade: a user's shard
  // must come out the same in all of them.
  it('shards - the hash of fixed strings never changes', () => {
    expect(fnv1a32('')).toBe(2166136261);
    expect(fnv1a32('1400000000:user-0')).toBe(1508674180);
    expect(fnv1a32('1400000000:名字')).toBe(2994887437);
    expect(fnv1a32('1400000000:😀')).toBe(2437658423);
    expect(fnv1a32('node-a#17')).toBe(1890197900);
    expect(shardOf(1400000000, 'alice')).toBe(750);
    expect(shardOf(1400000000, 'user-42')).toBe(958);
  });

  it('shards - the hash is FNV-1a over the UTF-8 bytes, lone surrogates as U+FFFD', () => {
    for (const text of ['é', '\ud800', 'a\udc00b', '\ud83d', 'x\ud83d\ude00y\uffff', '\udbff\udfff']) {
      expect(fnv1a32(text), JSON.stringify(text)).toBe(byEncodedBytes(text));
    }
    for (let seed = 1; seed <= 2000; seed++) {
      const text = randomText(seed, 1 + (seed % 40));
      expect(fnv1a32(text), `seed ${seed}`).toBe(byEncodedBytes(text));
    }
  });

  it('shards - every userID lands in a shard below SHARD_COUNT', () => {
    for (let i = 0; i < 5000; i++) {
      const shard = shardOf(1400000000, `user-${i}`);
      expect(Number.isInteger(shard) && shard >= 0 && shard < SHARD_COUNT).toBe(true);
    }
  });
});
