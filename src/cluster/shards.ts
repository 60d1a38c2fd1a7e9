/** Fixed forever: changing it moves every user. ~10x the largest expected node count. */
export const SHARD_COUNT = 1024;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** 32-bit FNV-1a over the UTF-8 bytes of `text`. */
export function fnv1a32(text: string): number {
  let hash = FNV_OFFSET;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, FNV_PRIME) >>> 0;
  }
  return hash >>> 0;
}

export const shardOf = (sdkAppID: number, userID: string, shardCount = SHARD_COUNT): number =>
  fnv1a32(`${sdkAppID}:${userID}`) % shardCount;
