/**
 * Events per second over the last few whole seconds, in constant memory: one counter
 * per second in a ring, so marking costs an addition and reading never allocates.
 */
export class RateMeter {
  private readonly counts: number[];
  private readonly seconds: number[];

  constructor(private readonly now: () => number, private readonly windowSeconds = 5) {
    this.counts = new Array<number>(windowSeconds + 1).fill(0);
    this.seconds = new Array<number>(windowSeconds + 1).fill(-1);
  }

  mark(count = 1): void {
    const second = Math.floor(this.now() / 1000);
    const slot = second % this.counts.length;
    if (this.seconds[slot] !== second) {
      this.seconds[slot] = second;
      this.counts[slot] = 0;
    }
    this.counts[slot]! += count;
  }

  /** The mean rate over the last `windowSeconds` complete seconds (the current one excluded). */
  perSecond(): number {
    const current = Math.floor(this.now() / 1000);
    let total = 0;
    for (let i = 0; i < this.counts.length; i++) {
      const second = this.seconds[i]!;
      if (second < current && second >= current - this.windowSeconds) total += this.counts[i]!;
    }
    return total / this.windowSeconds;
  }
}
