/** The drop storm: half the users' sockets destroyed at once; every watcher must see OFFLINE. */
import { Histogram, type HistogramData, type LatencySummary } from '../stats.js';
import { meter, round, sleep, type Ctx, type PhaseCost } from './context.js';

interface DropResult {
  terminated: number;
  expected: number;
  seen: number;
  t0Us: number;
  lastUs: number;
  hist: HistogramData;
}

export interface DropPhase extends PhaseCost {
  socketsDestroyed: number;
  offlineExpected: number;
  offlineSeen: number;
  /** From the first socket destroyed until the last watcher saw its target OFFLINE; null if some never did. */
  allOfflineSeconds: number | null;
  /** From the first socket destroyed until the last OFFLINE seen (all of them or not). */
  lastOfflineSeenSeconds: number;
  /** Per (watcher, dropped user): destroy → OFFLINE seen. */
  offlineLatency: LatencySummary;
}

export async function dropStorm(ctx: Ctx): Promise<DropPhase> {
  ctx.log(`drop storm: destroying the sockets of the even users (half), waiting until every online watcher sees them OFFLINE …`);
  await sleep(ctx.opts.settleSeconds * 1000);
  const m = meter(ctx);
  const results = await ctx.drivers.all<DropResult>('drop', { parity: 0, timeoutMs: 60_000 });
  const cost = m.stop();
  const t0 = Math.min(...results.map((r) => r.t0Us));
  const last = Math.max(...results.map((r) => r.lastUs));
  const phase: DropPhase = {
    ...cost,
    socketsDestroyed: results.reduce((a, r) => a + r.terminated, 0),
    offlineExpected: results.reduce((a, r) => a + r.expected, 0),
    offlineSeen: results.reduce((a, r) => a + r.seen, 0),
    allOfflineSeconds: null,
    lastOfflineSeenSeconds: 0,
    offlineLatency: Histogram.merged(results.map((r) => r.hist)).summaryMs(),
  };
  phase.lastOfflineSeenSeconds = round((last - t0) / 1e6, 3);
  if (phase.offlineSeen >= phase.offlineExpected) phase.allOfflineSeconds = phase.lastOfflineSeenSeconds;
  ctx.log(
    `  ${phase.socketsDestroyed} sockets destroyed; ${phase.offlineSeen}/${phase.offlineExpected} OFFLINE seen, ${phase.allOfflineSeconds === null ? 'NOT all: the last' : 'all'} within ${phase.lastOfflineSeenSeconds} s ` +
      `(p50 ${phase.offlineLatency.p50Ms} p99 ${phase.offlineLatency.p99Ms} ms)`,
  );
  return phase;
}
