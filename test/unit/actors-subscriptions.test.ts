import { describe, expect, it } from 'vitest';
import {
  NO_SUBSCRIPTIONS,
  storedSubscriptions,
  subscribe,
  subscriptionEntries,
  unsubscribe,
} from '../../src/actors/subscriptions.js';
import type { Subscription, SubscriptionList } from '../../src/actors/types.js';

const sub = (userID: string, subscribedAt: number): Subscription => ({ userID, subscribedAt });
const listOf = (...entries: Subscription[]): SubscriptionList => ({
  userIDs: entries.map((s) => s.userID),
  subscribedAt: entries.map((s) => s.subscribedAt),
});
const entries = subscriptionEntries;
const names = (list: SubscriptionList) => [...list.userIDs];

describe('subscriptions - subscribe()', () => {
  it('subscriptions - adds new targets at the end with the given time', () => {
    const result = subscribe(listOf(sub('a', 1)), ['b', 'c'], 10, 200);
    expect(entries(result.subscriptions)).toEqual([sub('a', 1), sub('b', 10), sub('c', 10)]);
    expect(result.evicted).toEqual([]);
  });

  it('subscriptions - subscribing to an empty list adds in call order', () => {
    const result = subscribe(NO_SUBSCRIPTIONS, ['z', 'y', 'x'], 5, 200);
    expect(names(result.subscriptions)).toEqual(['z', 'y', 'x']);
  });

  it('subscriptions - a re-subscribed target moves to the end with the new time', () => {
    const result = subscribe(listOf(sub('a', 1), sub('b', 2), sub('c', 3)), ['a'], 10, 200);
    expect(entries(result.subscriptions)).toEqual([sub('b', 2), sub('c', 3), sub('a', 10)]);
    expect(result.evicted).toEqual([]);
  });

  it('subscriptions - duplicates within one call are held once', () => {
    const result = subscribe(NO_SUBSCRIPTIONS, ['a', 'a', 'b', 'a'], 1, 200);
    expect(names(result.subscriptions)).toEqual(['a', 'b']);
  });

  it('subscriptions - beyond the cap the oldest are evicted, oldest first', () => {
    const result = subscribe(listOf(sub('a', 1), sub('b', 2), sub('c', 3)), ['d', 'e'], 10, 3);
    expect(entries(result.subscriptions)).toEqual([sub('c', 3), sub('d', 10), sub('e', 10)]);
    expect(result.evicted).toEqual(['a', 'b']);
  });

  it('subscriptions - a refreshed target is not evicted in place of an older one', () => {
    const result = subscribe(listOf(sub('a', 1), sub('b', 2), sub('c', 3)), ['a', 'd'], 10, 3);
    expect(names(result.subscriptions)).toEqual(['c', 'a', 'd']);
    expect(result.evicted).toEqual(['b']);
  });

  it('subscriptions - exactly at the cap nothing is evicted', () => {
    const result = subscribe(listOf(sub('a', 1), sub('b', 2)), ['c'], 10, 3);
    expect(names(result.subscriptions)).toEqual(['a', 'b', 'c']);
    expect(result.evicted).toEqual([]);
  });

  it('subscriptions - the result never exceeds the cap, and its two lists stay the same length', () => {
    const existing = listOf(...Array.from({ length: 200 }, (_, i) => sub(`u${i}`, i)));
    const targets = Array.from({ length: 100 }, (_, i) => `n${i}`);
    const result = subscribe(existing, targets, 1_000, 200);
    expect(result.subscriptions.userIDs).toHaveLength(200);
    expect(result.subscriptions.subscribedAt).toHaveLength(200);
    expect(result.evicted).toEqual(Array.from({ length: 100 }, (_, i) => `u${i}`));
    expect(names(result.subscriptions).slice(-100)).toEqual(targets);
    expect(result.subscriptions.subscribedAt.slice(0, 100)).toEqual(Array.from({ length: 100 }, (_, i) => 100 + i));
  });

  it('subscriptions - does not mutate its input', () => {
    const input = listOf(sub('a', 1), sub('b', 2));
    const copy = structuredClone(input);
    subscribe(input, ['a', 'c'], 10, 2);
    expect(input).toEqual(copy);
  });

  it('subscriptions - the shared empty list cannot be changed in place', () => {
    expect(() => (NO_SUBSCRIPTIONS.userIDs as string[]).push('a')).toThrow(TypeError);
    expect(subscribe(NO_SUBSCRIPTIONS, ['a'], 1, 200).subscriptions).not.toBe(NO_SUBSCRIPTIONS);
  });
});

describe('subscriptions - unsubscribe()', () => {
  it('subscriptions - removes only the named targets', () => {
    expect(entries(unsubscribe(listOf(sub('a', 1), sub('b', 2), sub('c', 3)), ['b']))).toEqual([sub('a', 1), sub('c', 3)]);
  });

  it('subscriptions - unknown targets are ignored, and the list is kept as it is', () => {
    const list = listOf(sub('a', 1));
    expect(unsubscribe(list, ['zz'])).toBe(list);
  });

  it('subscriptions - an empty target list clears everything', () => {
    expect(unsubscribe(listOf(sub('a', 1), sub('b', 2)), [])).toEqual(NO_SUBSCRIPTIONS);
  });

  it('subscriptions - keeps the order of the remaining subscriptions', () => {
    expect(names(unsubscribe(listOf(sub('a', 1), sub('b', 2), sub('c', 3), sub('d', 4)), ['a', 'c']))).toEqual(['b', 'd']);
  });

  it('subscriptions - unsubscribe does not mutate its input', () => {
    const input = listOf(sub('a', 1), sub('b', 2));
    unsubscribe(input, ['a']);
    unsubscribe(input, []);
    expect(entries(input)).toEqual([sub('a', 1), sub('b', 2)]);
  });
});

describe('subscriptions - stored lists', () => {
  it('subscriptions - a packed list is read as it is', () => {
    const list = listOf(sub('a', 1), sub('b', 2));
    expect(storedSubscriptions(list)).toBe(list);
  });

  it('subscriptions - a list stored one entry per subscription (before the packing) is read in its order', () => {
    expect(entries(storedSubscriptions([sub('b', 5), sub('a', 7)]))).toEqual([sub('b', 5), sub('a', 7)]);
  });

  it('subscriptions - an empty or missing stored list is nothing subscribed', () => {
    expect(storedSubscriptions([])).toBe(NO_SUBSCRIPTIONS);
    expect(storedSubscriptions({ userIDs: [], subscribedAt: [] })).toBe(NO_SUBSCRIPTIONS);
    expect(storedSubscriptions(undefined)).toBe(NO_SUBSCRIPTIONS);
  });
});
