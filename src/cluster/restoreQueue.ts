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
  private running = 0;
  private stopped = false;

  constructor(
    private readonly restore: (key: string) => Promise<void>,
    private readonly log: Logger,
    private readonly concurrency = 32,
    private readonly maxAttempts = 5,
  ) {}

  /** Queues index keys; a key already waiting is not queued twice. */
  add(keys: Iterable<string>): void {
    for (const key of keys) {
      if (this.queued.has(key)) continue;
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
  }

  private pump(): void {
    while (!this.stopped && this.running < this.concurrency && this.waiting.length) {
      const job = this.waiting.shift()!;
      this.running++;
      void this.restore(job.key)
        .then(
          () => this.queued.delete(job.key),
          (error: unknown) => this.failed(job, error),
        )
        .finally(() => {
          this.running--;
          this.pump();
        });
    }
  }

  private failed(job: { key: string; attempt: number }, error: unknown): void {
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
