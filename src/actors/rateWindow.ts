/** A sliding-window log: the epoch ms of the calls accepted in the current window. */
export type RateWindow = readonly number[];

export type RateDecision =
  | { allowed: true; window: number[] }
  | { allowed: false; retryAfterMs: number };

/**
 * Admits a call if fewer than `count` calls were accepted in the last `windowMs`.
 * A refused call leaves the window unchanged (it counts nothing) and says how long
 * until the oldest accepted call leaves the window.
 */
export function admit(window: RateWindow | undefined, now: number, limit: { count: number; windowMs: number }): RateDecision {
  const live = (window ?? []).filter((at) => at > now - limit.windowMs);
  if (live.length >= limit.count) {
    const oldest = live[live.length - limit.count] ?? now;
    return { allowed: false, retryAfterMs: Math.max(1, oldest + limit.windowMs - now) };
  }
  // Not pushed: an array grown by push keeps 16 spare slots, 128 B per user for a window of one call.
  return { allowed: true, window: live.concat(now) };
}

/** Drops calls that left the window, so a persisted snapshot carries no stale entries. */
export function prune(window: RateWindow | undefined, now: number, windowMs: number): number[] {
  return (window ?? []).filter((at) => at > now - windowMs);
}
