import type { Subscription, SubscriptionList } from './types.js';

/**
 * Nothing subscribed. Shared by every actor without subscriptions; lists are never
 * changed in place, each change makes a new one.
 */
export const NO_SUBSCRIPTIONS: SubscriptionList = Object.freeze({
  userIDs: Object.freeze([]) as readonly string[],
  subscribedAt: Object.freeze([]) as readonly number[],
});

export interface SubscribeResult {
  subscriptions: SubscriptionList;
  /** Users that fell out because the cap was reached, oldest first. */
  evicted: string[];
}

/**
 * Adds `targets` to the list, or refreshes the age of those already held, then
 * evicts the oldest subscriptions beyond `cap`. The list stays ordered oldest first,
 * so eviction order is the list order.
 */
export function subscribe(list: SubscriptionList, targets: readonly string[], now: number, cap: number): SubscribeResult {
  const refreshed = new Set(targets);
  const { userIDs, subscribedAt } = keeping(list, (userID) => !refreshed.has(userID));
  for (const userID of refreshed) {
    userIDs.push(userID);
    subscribedAt.push(now);
  }
  const overflow = Math.max(0, userIDs.length - cap);
  // slice() copies to the exact length: a list built by push() keeps up to half again as spare room.
  return {
    subscriptions: { userIDs: userIDs.slice(overflow), subscribedAt: subscribedAt.slice(overflow) },
    evicted: userIDs.slice(0, overflow),
  };
}

/** Removes `targets`; an empty list clears every subscription (SPEC.md §3). */
export function unsubscribe(list: SubscriptionList, targets: readonly string[]): SubscriptionList {
  if (targets.length === 0) return NO_SUBSCRIPTIONS;
  const removed = new Set(targets);
  const kept = keeping(list, (userID) => !removed.has(userID));
  return kept.userIDs.length === list.userIDs.length ? list : { userIDs: kept.userIDs.slice(), subscribedAt: kept.subscribedAt.slice() };
}

/** The entries of `list` whose user `keep` accepts, in order, in new arrays. */
function keeping(list: SubscriptionList, keep: (userID: string) => boolean): { userIDs: string[]; subscribedAt: number[] } {
  const userIDs: string[] = [];
  const subscribedAt: number[] = [];
  list.userIDs.forEach((userID, i) => {
    if (!keep(userID)) return;
    userIDs.push(userID);
    subscribedAt.push(list.subscribedAt[i]!);
  });
  return { userIDs, subscribedAt };
}

/** The list as one entry per subscription, oldest first: for reading, not for holding. */
export function subscriptionEntries(list: SubscriptionList): Subscription[] {
  return list.userIDs.map((userID, i) => ({ userID, subscribedAt: list.subscribedAt[i]! }));
}

/**
 * The list of a stored snapshot. Snapshots written before the list was packed hold
 * one entry per subscription; they are read as they are, so an upgrade loses none.
 */
export function storedSubscriptions(stored: unknown): SubscriptionList {
  if (Array.isArray(stored)) {
    const entries = stored as Subscription[];
    if (entries.length === 0) return NO_SUBSCRIPTIONS;
    return { userIDs: entries.map((s) => s.userID), subscribedAt: entries.map((s) => s.subscribedAt) };
  }
  const list = stored as SubscriptionList | undefined;
  return list?.userIDs.length ? list : NO_SUBSCRIPTIONS;
}
