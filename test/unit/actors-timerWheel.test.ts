import { describe, expect, it } from 'vitest';
import { TimerWheel, type WheelDriver } from '../../src/actors/timerWheel.js';

/** A driver whose time and ticks the test moves: `advance` ticks at every interval it passes. */
function fakeDriver(start = 1_000_000) {
  let now = start;
  let ticking: { ms: number; tick: () => void; next: number } | undefined;
  const errors: unknown[] = [];
  let started = 0;
  const driver: WheelDriver = {
    now: () => now,
    every(ms, tick) {
      started++;
      const entry = { ms, tick, next: now + ms };
      ticking = entry;
      return { stop: () => void (ticking === entry && (ticking = undefined)) };
    },
    report: (error) => void errors.push(error),
  };
  const advance = (ms: number) => {
    const end = now + ms;
    while (ticking && ticking.next <= end) {
      now = ticking.next;
      ticking.next += ticking.ms;
      ticking.tick();
    }
    now = end;
  };
  return { driver, advance, errors, isTicking: () => ticking !== undefined, starts: () => started, now: () => now };
}

describe('timer wheel', () => {
  it('timer wheel - a timer fires at or after its time, never before, and at most one slot late', () => {
    const { driver, advance, now } = fakeDriver(1_000_010);
    const wheel = new TimerWheel(50, driver);
    const firedAt: number[] = [];
    const due = now() + 400_000;
    wheel.setTimeout(() => firedAt.push(now()), 400_000);
    advance(399_999);
    expect(firedAt).toEqual([]);
    advance(100);
    expect(firedAt).toHaveLength(1);
    expect(firedAt[0]).toBeGreaterThanOrEqual(due);
    expect(firedAt[0]! - due).toBeLessThanOrEqual(50);
    expect(wheel.pending).toBe(0);
  });

  it('timer wheel - timers of a later slot fire after those of earlier ones, those of one slot in the order they were set', () => {
    const { driver, advance } = fakeDriver();
    const wheel = new TimerWheel(50, driver);
    const order: string[] = [];
    wheel.setTimeout(() => order.push('late'), 300);
    wheel.setTimeout(() => order.push('first'), 10);
    wheel.setTimeout(() => order.push('second'), 20);
    wheel.setTimeout(() => order.push('now'), 0);
    advance(1_000);
    // `now`, `first` and `second` share the first slot after the time they were set at.
    expect(order).toEqual(['first', 'second', 'now', 'late']);
  });

  it('timer wheel - a cleared timer does not fire, and an empty wheel stops ticking until a timer is set again', () => {
    const { driver, advance, isTicking, starts } = fakeDriver();
    const wheel = new TimerWheel(50, driver);
    let fired = 0;
    const a = wheel.setTimeout(() => fired++, 1_000);
    const b = wheel.setTimeout(() => fired++, 1_000);
    wheel.clearTimeout(a);
    wheel.clearTimeout(a);
    expect(wheel.pending).toBe(1);
    wheel.clearTimeout(b);
    expect(wheel.pending).toBe(0);
    expect(isTicking()).toBe(false);
    advance(5_000);
    expect(fired).toBe(0);
    wheel.setTimeout(() => fired++, 100);
    expect(isTicking()).toBe(true);
    expect(starts()).toBe(2);
    advance(200);
    expect(fired).toBe(1);
    expect(isTicking()).toBe(false);
  });

  it('timer wheel - after a long idle a new timer waits its own delay', () => {
    const { driver, advance, now } = fakeDriver();
    const wheel = new TimerWheel(50, driver);
    wheel.setTimeout(() => undefined, 10);
    advance(100);
    advance(3_600_000);
    const setAt = now();
    let firedAt = 0;
    wheel.setTimeout(() => (firedAt = now()), 1_000);
    advance(999);
    expect(firedAt).toBe(0);
    advance(51);
    expect(firedAt - setAt).toBeGreaterThanOrEqual(1_000);
  });

  it('timer wheel - a timer set by a firing one that is due already fires in the same tick', () => {
    const { driver, advance } = fakeDriver();
    const wheel = new TimerWheel(50, driver);
    const order: string[] = [];
    wheel.setTimeout(() => {
      order.push('outer');
      wheel.setTimeout(() => order.push('inner'), 0);
    }, 10);
    advance(50);
    expect(order).toEqual(['outer']);
    advance(50);
    expect(order).toEqual(['outer', 'inner']);
  });

  it('timer wheel - a timer that throws is reported, and the other timers of its slot still fire', () => {
    const { driver, advance, errors } = fakeDriver();
    const wheel = new TimerWheel(50, driver);
    let fired = 0;
    wheel.setTimeout(() => {
      throw new Error('boom');
    }, 10);
    wheel.setTimeout(() => fired++, 10);
    advance(100);
    expect(fired).toBe(1);
    expect(errors).toEqual([new Error('boom')]);
  });
});
