/**
 * Work of one owner (a device socket, a user) run one piece at a time, in order. The owner
 * holds the queue's fields itself, not an object of their own: there is one per socket and
 * one per user.
 */
export interface Serial {
  /** Settles once everything queued so far has run; it settles with nothing, whatever the outcome. */
  queue: Promise<unknown>;
  /** Pieces queued or running. */
  queued: number;
}

/**
 * The queue of an owner with nothing queued: one settled promise shared by all of them, so an
 * idle owner does not keep its last piece's promise (~50 B each).
 */
export const IDLE: Promise<unknown> = Promise.resolve();

/** Runs `work` after everything queued on `serial` before it; returns its outcome. */
export function runInOrder<T>(serial: Serial, work: () => T | Promise<T>): Promise<T> {
  serial.queued++;
  const run = serial.queue.then(work);
  // A queue that settled with the last answer would hold it (a query's statuses, say) while idle.
  const done = (): void => {
    if (--serial.queued === 0) serial.queue = IDLE;
  };
  serial.queue = run.then(done, done);
  return run;
}
