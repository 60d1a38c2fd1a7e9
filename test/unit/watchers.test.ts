import { describe, expect, it } from 'vitest';
import { BACK_TO_LIST, LIST_MAX, Watchers } from '../../src/cluster/watchers.js';

const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `w${from + i}`);
const filled = (n: number) => {
  const watchers = new Watchers<string>();
  for (const id of ids(n)) watchers.add(id);
  return watchers;
};
const sorted = (watchers: Watchers<string>) => [...watchers].sort();

describe('watchers - the watchers of one user on a node', () => {
  it('watchers - holds each watcher once, however often it is added', () => {
    const watchers = new Watchers<string>();
    watchers.add('a');
    watchers.add('b');
    watchers.add('a');
    expect(watchers.size).toBe(2);
    expect(sorted(watchers)).toEqual(['a', 'b']);
  });

  it('watchers - removing one keeps the others, and removing an absent one changes nothing', () => {
    const watchers = filled(5);
    expect(watchers.delete('w0')).toBe(true);
    expect(watchers.delete('w0')).toBe(false);
    expect(watchers.delete('nobody')).toBe(false);
    expect(sorted(watchers)).toEqual(['w1', 'w2', 'w3', 'w4']);
  });

  it('watchers - removing the last one added leaves the rest as they were', () => {
    const watchers = filled(3);
    watchers.delete('w2');
    expect(sorted(watchers)).toEqual(['w0', 'w1']);
  });

  it('watchers - past LIST_MAX it still holds each once and removes any of them', () => {
    const watchers = filled(LIST_MAX + 10);
    for (const id of ids(LIST_MAX + 10)) watchers.add(id);
    expect(watchers.size).toBe(LIST_MAX + 10);
    expect(watchers.delete(`w${LIST_MAX + 5}`)).toBe(true);
    expect(watchers.delete(`w${LIST_MAX + 5}`)).toBe(false);
    expect(watchers.size).toBe(LIST_MAX + 9);
    expect(new Set(watchers).size).toBe(LIST_MAX + 9);
  });

  it('watchers - shrinking below BACK_TO_LIST and growing again loses and repeats no one', () => {
    const watchers = filled(LIST_MAX + 1);
    for (const id of ids(LIST_MAX + 1 - BACK_TO_LIST + 1)) watchers.delete(id);
    const left = ids(BACK_TO_LIST - 1, LIST_MAX + 1 - BACK_TO_LIST + 1);
    expect(sorted(watchers)).toEqual([...left].sort());
    for (const id of ids(LIST_MAX + 1)) watchers.add(id);
    expect(watchers.size).toBe(LIST_MAX + 1);
    expect(sorted(watchers)).toEqual(ids(LIST_MAX + 1).sort());
  });

  it('watchers - a thousand watchers added and all removed leave none', () => {
    const watchers = filled(1_000);
    for (const id of ids(1_000).reverse()) expect(watchers.delete(id)).toBe(true);
    expect(watchers.size).toBe(0);
    expect([...watchers]).toEqual([]);
  });
});
