/**
 * The cluster view's lists of shards as ranges: `[0,1,2,5]` ↔ `"0-2,5"`, so a node's
 * few hundred shards stay readable in the admin API and the dashboard.
 */
export function compactRanges(shards: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < shards.length; ) {
    let j = i;
    while (j + 1 < shards.length && shards[j + 1] === shards[j]! + 1) j++;
    parts.push(i === j ? `${shards[i]}` : `${shards[i]}-${shards[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** `"0-2,5"` → `[0,1,2,5]`; empty or absent → `[]`. */
export function expandRanges(ranges: string | undefined): number[] {
  const shards: number[] = [];
  for (const part of (ranges ?? '').split(',')) {
    if (!part) continue;
    const [from, to = from] = part.split('-').map(Number) as [number, number?];
    for (let shard = from; shard <= to!; shard++) shards.push(shard);
  }
  return shards;
}
