import { fnv1a32 } from './shards.js';

/**
 * Who should own `shard` among `nodes`: highest random weight (rendezvous) hashing.
 * When a node leaves only its shards move, spread over all survivors; a joining
 * node takes about 1/N of the shards.
 */
export function desiredOwner(shard: number, nodes: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestWeight = -1;
  for (const node of nodes) {
    const weight = mix(fnv1a32(`${node}#${shard}`));
    if (weight > bestWeight || (weight === bestWeight && best !== undefined && node < best)) {
      best = node;
      bestWeight = weight;
    }
  }
  return best;
}

/** A 32-bit finaliser (murmur3 fmix32): FNV alone spreads similar keys poorly. */
function mix(hash: number): number {
  let h = hash;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
