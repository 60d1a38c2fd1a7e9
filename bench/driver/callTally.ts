import { nowUs } from '../procStat.js';
import { Histogram } from '../stats.js';

/** The answers to one phase's calls: how many succeeded and how fast, how many failed and why (the first few). */
export class CallTally {
  ok = 0;
  failed = 0;
  readonly errors: string[] = [];
  readonly hist = new Histogram();
  readonly startUs = nowUs();

  succeeded(sentUs: number, answeredUs = nowUs()): void {
    this.ok++;
    this.hist.record(answeredUs - sentUs);
  }

  failedWith(reason: string): void {
    this.failed++;
    if (this.errors.length < 5) this.errors.push(reason);
  }

  result() {
    return { ok: this.ok, failed: this.failed, errors: this.errors, startUs: this.startUs, endUs: nowUs(), hist: this.hist.toJSON() };
  }
}
