/** Fixed forever: changing it moves every user. ~10x the largest expected node count. */
export const SHARD_COUNT = 1024;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * 32-bit FNV-1a over the UTF-8 bytes of `text`, as `TextEncoder` gives them (a lone
 * surrogate counts as U+FFFD). The bytes are produced in the loop, not encoded into a
 * buffer first: every command's routing hashes its user, every new view of the cluster
 * hashes 1024 shards for each of its nodes, and a buffer per hash cost ~1 µs and a native
 * allocation each time.
 * Every node of a cluster must agree on these values, so they never change.
 */
export function fnv1a32(text: string): number {
  let hash = FNV_OFFSET;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    let code = text.charCodeAt(i);
    if (code < 0x80) {
      hash = Math.imul(hash ^ code, FNV_PRIME);
      continue;
    }
    if (code < 0x800) {
      hash = Math.imul(hash ^ (0xc0 | (code >> 6)), FNV_PRIME);
      hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), FNV_PRIME);
      continue;
    }
    if (code >= 0xd800 && code <= 0xdfff) {
      const low = i + 1 < length ? text.charCodeAt(i + 1) : 0;
      if (code <= 0xdbff && low >= 0xdc00 && low <= 0xdfff) {
        i++;
        const point = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        hash = Math.imul(hash ^ (0xf0 | (point >> 18)), FNV_PRIME);
        hash = Math.imul(hash ^ (0x80 | ((point >> 12) & 0x3f)), FNV_PRIME);
        hash = Math.imul(hash ^ (0x80 | ((point >> 6) & 0x3f)), FNV_PRIME);
        hash = Math.imul(hash ^ (0x80 | (point & 0x3f)), FNV_PRIME);
        continue;
      }
      code = 0xfffd;
    }
    hash = Math.imul(hash ^ (0xe0 | (code >> 12)), FNV_PRIME);
    hash = Math.imul(hash ^ (0x80 | ((code >> 6) & 0x3f)), FNV_PRIME);
    hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), FNV_PRIME);
  }
  return hash >>> 0;
}

export const shardOf = (sdkAppID: number, userID: string, shardCount = SHARD_COUNT): number =>
  fnv1a32(`${sdkAppID}:${userID}`) % shardCount;
