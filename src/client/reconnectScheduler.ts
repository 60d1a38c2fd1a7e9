/**
 * The timer side of reconnecting: waits the backoff delay of the current attempt before each
 * reconnect. Kept apart from backoff.ts so the delay arithmetic stays pure.
 */
import { backoffDelay, type BackoffPolicy } from './backoff.js';

/**
 * Runs one callback after the backoff delay of the current attempt; each `schedule` counts an
 * attempt and `reset` (after a successful login) starts the growth over.
 */
export class ReconnectScheduler {
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  /** Replaces any scheduled run; returns the chosen delay. */
  schedule(run: () => void): number {
    this.cancel();
    const delay = backoffDelay(this.attempt, this.policy, this.random);
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      run();
    }, delay);
    return delay;
  }

  /** Back to the first attempt's delay, for the next connection loss. */
  reset(): void {
    this.attempt = 0;
  }

  cancel(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
