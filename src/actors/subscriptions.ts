import type { Subscription } from './types.js';

export interface SubscribeResult {
  subscriptions: Subscription[];
  /** Users that fell out because the cap was reached, oldest first. */
  evicted: string[];
}

/**
 * Adds `targets` to the list, or refreshes the age of those already held, then
 * evicts the oldest subscriptions beyond `cap`. The list stays ordered oldest first,
 * so eviction order is the list order.
 */
export function subscribe(
  subscriptions: readonly Subscription[],
  targets: readonly string[],
  now: number,
  cap: number,
): SubscribeResult {
  const refreshed = new Set(targets);
  const kept = subscriptions.filter((s) => !refreshed.has(s.userID));
  const added = [...refreshed].map((userID) => ({ userID, subscribedAt: now }));
  const all = kept.concat(added);
  const overflow = Math.max(0, all.length - cap);
  return {
    subscriptions: all.slice(overflow),
    evicted: all.slice(0, overflow).map((s) => s.userID),
  };
}

/** Removes `targets`; an empty list clears every subscription (SPEC.md §3). */
export function unsubscribe(subscriptions: readonly Subscription[], targets: readonly string[]): Subscription[] {
  if (targets.length === 0) return [];
  const removed = new Set(targets);
  return subscriptions.filter((s) => !removed.has(s.userID));
}
