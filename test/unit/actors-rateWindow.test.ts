import { describe, expect, it } from 'vitest';
import { admit, prune } from '../../src/actors/rateWindow.js';

const LIMIT = { count: 20, windowMs: 5_000 };
const T = 1_700_000_000_000;

/** Admits `n` calls at `now`, threading the window through, and returns it. */
function fill(n: number, now: number, window: number[] = []): number[] {
  let w = window;
  for (let i = 0; i < n; i++) {
    const d = admit(w, now, LIMIT);
    if (!d.allowed) throw new Error(`call ${i} refused`);
    w = d.window;
  }
  return w;
}

describe('rateWindow - admit()', () => {
  it('rateWindow - an undefined window admits and starts a window with now', () => {
    expect(admit(undefined, T, LIMIT)).toEqual({ allowed: true, window: [T] });
  });

  it('rateWindow - admits count calls in one window', () => {
    const w = fill(20, T);
    expect(w).toHaveLength(20);
  });

  it('rateWindow - refuses the call beyond count', () => {
    const d = admit(fill(20, T), T, LIMIT);
    expect(d.allowed).toBe(false);
  });

  it('rateWindow - retryAfterMs is the time until the oldest call leaves the window', () => {
    const w = fill(19, T + 1_000, fill(1, T));
    const d = admit(w, T + 1_250, LIMIT);
    expect(d).toEqual({ allowed: false, retryAfterMs: 3_750 });
  });

  it('rateWindow - the call is admitted exactly when the oldest leaves the window', () => {
    const w = fill(19, T + 1_000, fill(1, T));
    expect(admit(w, T + 4_999, LIMIT)).toEqual({ allowed: false, retryAfterMs: 1 });
    const d = admit(w, T + 5_000, LIMIT);
    expect(d.allowed).toBe(true);
    expect(d.allowed && d.window).toHaveLength(20);
    expect(d.allowed && d.window[0]).toBe(T + 1_000);
  });

  it('rateWindow - retryAfterMs is at least 1', () => {
    const d = admit(fill(20, T), T, LIMIT);
    expect(d).toEqual({ allowed: false, retryAfterMs: 5_000 });
    expect(d.allowed === false && d.retryAfterMs).toBeGreaterThanOrEqual(1);
  });

  it('rateWindow - a refusal leaves the window unchanged', () => {
    const w = fill(20, T);
    const before = [...w];
    admit(w, T + 10, LIMIT);
    admit(w, T + 20, LIMIT);
    expect(w).toEqual(before);
  });

  it('rateWindow - calls older than windowMs no longer count', () => {
    const w = fill(20, T);
    const d = admit(w, T + 5_000, LIMIT);
    expect(d).toEqual({ allowed: true, window: [T + 5_000] });
  });

  it('rateWindow - a window with more entries than count (limit lowered) refuses until enough leave', () => {
    const w = [T, T + 1, T + 2, T + 3, T + 4];
    const lower = { count: 3, windowMs: 5_000 };
    // 5 live calls, count 3: the call is allowed once only 2 remain, i.e. when T + 2 leaves.
    expect(admit(w, T + 10, lower)).toEqual({ allowed: false, retryAfterMs: 4_992 });
    expect(admit(w, T + 5_001, lower).allowed).toBe(false);
    expect(admit(w, T + 5_002, lower).allowed).toBe(true);
  });

  it('rateWindow - follows the count and windowMs it is given', () => {
    const limit = { count: 2, windowMs: 100 };
    let d = admit([], T, limit);
    d = d.allowed ? admit(d.window, T + 10, limit) : d;
    expect(d.allowed).toBe(true);
    const w = d.allowed ? d.window : [];
    expect(admit(w, T + 20, limit)).toEqual({ allowed: false, retryAfterMs: 80 });
    expect(admit(w, T + 100, limit).allowed).toBe(true);
  });

  it('rateWindow - admit does not mutate the window it is given', () => {
    const w = [T];
    admit(w, T + 1, LIMIT);
    expect(w).toEqual([T]);
  });
});

describe('rateWindow - prune()', () => {
  it('rateWindow - prune drops calls that left the window', () => {
    expect(prune([T, T + 1_000, T + 4_000], T + 5_500, 5_000)).toEqual([T + 1_000, T + 4_000]);
  });

  it('rateWindow - prune of undefined is an empty window', () => {
    expect(prune(undefined, T, 5_000)).toEqual([]);
  });

  it('rateWindow - prune drops a call exactly windowMs old', () => {
    expect(prune([T], T + 5_000, 5_000)).toEqual([]);
  });
});
