import type { WebhookEvent } from './stateChange.js';

/**
 * A user's undelivered webhook events are kept at most this many: beyond it the oldest
 * go, counted and logged, so a receiver that is down for days cannot grow a user's
 * durable record without bound. At one change a second that is 17 minutes of changes.
 */
export const OUTBOX_CAP = 1_000;

/** Appends `event`; returns the new outbox and how many old events it had to give up. */
export function appendToOutbox(outbox: readonly WebhookEvent[], event: WebhookEvent, cap = OUTBOX_CAP): { outbox: WebhookEvent[]; overflow: number } {
  const next = [...outbox, event];
  const overflow = Math.max(0, next.length - cap);
  return { outbox: overflow ? next.slice(overflow) : next, overflow };
}

/** Retry delay after `failures` failed attempts: 1 s doubling to at most 5 minutes, with ±20 % jitter. */
export function retryDelayMs(failures: number, random: () => number = Math.random): number {
  const base = Math.min(300_000, 1_000 * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}
