import type { Logger } from '../log.js';

/**
 * Restores actors in the background at a bounded concurrency, so taking over a dead
 * node's shards never waits for its actors: the shards are served at once (a command
 * loads its actor on demand) while those with deadlines pending come back at a pace
 * the KV store can take. A failed restore is retried with backoff, then left to the
 * next command of that user.
 */
export class RestoreQueue {
  private readonly waiting: Array<{ key: string; attempt: number }> = [];
  private readonly queued = new Set<string>();
  private readonly restoring = new Set<string>();
  /**
   * Keys added again while their restore ran: that run may have read the user before what
   * queued it again (a failed write that evicted the actor), so they run once more after it.
   */
  private readonly again = new Set<string>();
  private running = 0;
  private stopped = false;

  constructor(
    private readonly restore: (key: string) => Promise<void>,
    private readonly log: Logger,
    private readonly concurrency = 32,
    private readonly maxAttempts = 5,
  ) {}

  /** Queues index keys; a key already waiting is not queued twice, nor restored twice at once. */
  add(keys: Iterable<string>): void {
    for (const key of keys) {
      if (this.queued.has(key)) {
        if (this.restoring.has(key)) this.again.add(key);
        continue;
      }
      this.queued.add(key);
      this.waiting.push({ key, attempt: 1 });
    }
    this.pump();
  }

  /** Actors waiting or being restored. */
  get pending(): number {
    return this.waiting.length + this.running;
  }

  stop(): void {
    this.stopped = true;
    this.waiting.length = 0;
    this.queued.clear();
    this.again.clear();
  }

  private pump(): void {
    while (!this.stopped && this.running < this.concurrency && this.waiting.length) {
      const job = this.waiting.shift()!;
      this.running++;
      this.restoring.add(job.key);
      void this.restore(job.key)
        .then(
          () => {
            if (!this.requeued(job.key)) this.queued.delete(job.key);
          },
          (error: unknown) => this.failed(job, error),
        )
        .finally(() => {
          this.running--;
          this.pump();
        });
    }
  }

  /** Ends a run of `key`; true if it was added again meanwhile and waits for another run. */
  private requeued(key: string): boolean {
    this.restoring.delete(key);
    if (this.stopped || !this.again.delete(key)) return false;
    this.waiting.push({ key, attempt: 1 });
    return true;
  }

  private failed(job: { key: string; attempt: number }, error: unknown): void {
    if (this.requeued(job.key)) return;
    if (this.stopped || job.attempt >= this.maxAttempts) {
      this.queued.delete(job.key);
      this.log.error({ err: error, key: job.key, attempts: job.attempt }, 'actor not restored; its next command will load it');
      return;
    }
    const delay = 250 * 2 ** job.attempt;
    setTimeout(() => {
      if (this.stopped) return;
      this.waiting.push({ key: job.key, attempt: job.attempt + 1 });
      this.pump();
    }, delay).unref();
  }
}
