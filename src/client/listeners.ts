/**
 * The registered {@link PresenceListener}s and the fan-out of events to them. One listener
 * throwing must not keep the others from hearing the event, nor break the client's own state
 * handling, which runs around these calls.
 */
import type { PresenceListener } from './types.js';

type EventName = keyof PresenceListener;
type EventArgs<E extends EventName> = Parameters<NonNullable<PresenceListener[E]>>;

export class ListenerSet {
  private readonly listeners = new Set<PresenceListener>();

  add(listener: PresenceListener): void {
    this.listeners.add(listener);
  }

  remove(listener: PresenceListener): void {
    this.listeners.delete(listener);
  }

  /** Calls `event` on every listener that has it, in the order they were added. */
  emit<E extends EventName>(event: E, ...args: EventArgs<E>): void {
    // A snapshot, so a listener may add or remove listeners while being called.
    for (const listener of [...this.listeners]) {
      const handler = listener[event] as ((...a: EventArgs<E>) => void) | undefined;
      if (typeof handler !== 'function') continue;
      try {
        handler.apply(listener, args);
      } catch (err) {
        console.error(`presence-cluster/client: a listener's ${event} threw`, err);
      }
    }
  }
}
