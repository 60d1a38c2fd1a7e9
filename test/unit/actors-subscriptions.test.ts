import { describe, expect, it } from 'vitest';
import { subscribe, unsubscribe } from '../../src/actors/subscriptions.js';
import type { Subscription } from '../../src/actors/types.js';

const sub = (userID: string, subscribedAt: number): Subscription => ({ userID, subscribedAt });
const names = (list: readonly Subscription[]) => list.map((s) => s.userID);

describe('subscriptions - subscribe()', () => {
  it('subscriptions - adds new targets at the end with the given time', () => {
    const result = subscribe([sub('a', 1)], ['b', 'c'], 10, 200);
    expect(result.subscriptions).toEqual([sub('a', 1), sub('b', 10), sub('c', 10)]);
    expect(result.evicted).toEqual([]);
  });

  it('subscriptions - subscribing to an empty list adds in call order', () => {
    const result = subscribe([], ['z', 'y', 'x'], 5, 200);
    expect(names(result.subscriptions)).toEqual(['z', 'y', 'x']);
  });

  it('subscriptions - a re-subscribed target moves to the end with the new time', () => {
    const result = subscribe([sub('a', 1), sub('b', 2), sub('c', 3)], ['a'], 10, 200);
    expect(result.subscriptions).toEqual([sub('b', 2), sub('c', 3), sub('a', 10)]);
    expect(result.evicted).toEqual([]);
  });

  it('subscriptions - duplicates within one call are held once', () => {
    const result = subscribe([], ['a', 'a', 'b', 'a'], 1, 200);
    expect(names(result.subscriptions)).toEqual(['a', 'b']);
  });

  it('subscriptions - beyond the cap the oldest are evicted, oldest first', () => {
    const result = subscribe([sub('a', 1), sub('b', 2), sub('c', 3)], ['d', 'e'], 10, 3);
    expect(names(result.subscriptions)).toEqual(['c', 'd', 'e']);
    expect(result.evicted).toEqual(['a', 'b']);
  });

  it('subscriptions - a refreshed target is not evicted in place of an older one', () => {
    const result = subscribe([sub('a', 1), sub('b', 2), sub('c', 3)], ['a', 'd'], 10, 3);
    expect(names(result.subscriptions)).toEqual(['c', 'a', 'd']);
    expect(result.evicted).toEqual(['b']);
  });

  it('subscriptions - exactly at the cap nothing is evicted', () => {
    const result = subscribe([sub('a', 1), sub('b', 2)], ['c'], 10, 3);
    expect(names(result.subscriptions)).toEqual(['a', 'b', 'c']);
    expect(result.evicted).toEqual([]);
  });

  it('subscriptions - the result never exceeds the cap', () => {
    const existing = Array.from({ length: 200 }, (_, i) => sub(`u${i}`, i));
    const targets = Array.from({ length: 100 }, (_, i) => `n${i}`);
    const result = subscribe(existing, targets, 1_000, 200);
    expect(result.subscriptions).toHaveLength(200);
    expect(result.evicted).toEqual(Array.from({ length: 100 }, (_, i) => `u${i}`));
    expect(names(result.subscriptions).slice(-100)).toEqual(targets);
  });

  it('subscriptions - does not mutate its input', () => {
    const input = [sub('a', 1), sub('b', 2)];
    const copy = structuredClone(input);
    subscribe(input, ['a', 'c'], 10, 2);
    expect(input).toEqual(copy);
  });
});

describe('subscriptions - unsubscribe()', () => {
  it('subscriptions - removes only the named targets', () => {
    expect(unsubscribe([sub('a', 1), sub('b', 2), sub('c', 3)], ['b'])).toEqual([sub('a', 1), sub('c', 3)]);
  });

  it('subscriptions - unknown targets are ignored', () => {
    expect(unsubscribe([sub('a', 1)], ['zz'])).toEqual([sub('a', 1)]);
  });

  it('subscriptions - an empty target list clears everything', () => {
    expect(unsubscribe([sub('a', 1), sub('b', 2)], [])).toEqual([]);
  });

  it('subscriptions - keeps the order of the remaining subscriptions', () => {
    expect(names(unsubscribe([sub('a', 1), sub('b', 2), sub('c', 3), sub('d', 4)], ['a', 'c']))).toEqual(['b', 'd']);
  });

  it('subscriptions - unsubscribe does not mutate its input', () => {
    const input = [sub('a', 1), sub('b', 2)];
    unsubscribe(input, ['a']);
    unsubscribe(input, []);
    expect(names(input)).toEqual(['a', 'b']);
  });
});
