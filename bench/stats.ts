/**
 * A log-bucketed latency histogram (1 % wide buckets from 1 µs to ~1000 s): cheap to record in
 * the drivers, mergeable in the coordinator, percentiles within 1 %.
 */
const GROWTH = Math.log(1.01);
const BUCKETS = Math.ceil(Math.log(1e9) / GROWTH) + 2;

export interface HistogramData {
  counts: Array<[number, number]>;
  count: number;
  sum: number;
  max: number;
}

export class Histogram {
  private counts = new Float64Array(BUCKETS);
  count = 0;
  sum = 0;
  max = 0;

  record(us: number): void {
    const v = us < 1 ? 1 : us;
    const index = Math.min(BUCKETS - 1, Math.floor(Math.log(v) / GROWTH));
    this.counts[index]!++;
    this.count++;
    this.sum += v;
    if (v > this.max) this.max = v;
  }

  /** The value at quantile q (0–1), in µs; 0 when empty. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.max, Math.exp((i + 1) * GROWTH));
    }
    return this.max;
  }

  toJSON(): HistogramData {
    const counts: Array<[number, number]> = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]) counts.push([i, this.counts[i]!]);
    return { counts, count: this.count, sum: this.sum, max: this.max };
  }

  merge(data: HistogramData): this {
    for (const [i, c] of data.counts) this.counts[i]! += c;
    this.count += data.count;
    this.sum += data.sum;
    if (data.max > this.max) this.max = data.max;
    return this;
  }

  static merged(parts: HistogramData[]): Histogram {
    const h = new Histogram();
    for (const part of parts) h.merge(part);
    return h;
  }

  /** p50 / p99 / p99.9 / max / mean in milliseconds, rounded to µs. */
  summaryMs(): LatencySummary {
    const ms = (us: number) => Math.round(us) / 1000;
    return {
      count: this.count,
      p50Ms: ms(this.quantile(0.5)),
      p99Ms: ms(this.quantile(0.99)),
      p999Ms: ms(this.quantile(0.999)),
      maxMs: ms(this.max),
      meanMs: this.count ? ms(this.sum / this.count) : 0,
    };
  }
}

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}
