/**
 * Waits on events instead of sleeping: `next(match)` resolves with the first value `heard` after
 * it for which `match` holds.
 */
export function waiter<T>(): { next(match: (value: T) => boolean): Promise<T>; heard(value: T): void } {
  const waiting = new Set<{ match: (value: T) => boolean; resolve: (value: T) => void }>();
  return {
    next: (match) => new Promise((resolve) => waiting.add({ match, resolve })),
    heard(value) {
      for (const entry of [...waiting]) {
        if (!entry.match(value)) continue;
        waiting.delete(entry);
        entry.resolve(value);
      }
    },
  };
}
