/** The login storm, the subscription graph over the wire, and the memory of online users. */
import { Histogram, type HistogramData, type LatencySummary } from '../stats.js';
import type { MemorySample } from '../servers.js';
import { counters, meter, round, sleep, waitDelivered, type Ctx, type PhaseCost } from './context.js';

interface CallsResult {
  ok: number;
  failed: number;
  errors: string[];
  startUs: number;
  endUs: number;
  hist: HistogramData;
}

export interface LoginPhase extends PhaseCost {
  logins: number;
  failed: number;
  errors: string[];
  loginsPerSecond: number;
  loginsPerSecondPerNode: number;
  /** Connect + login, per device. */
  latency: LatencySummary;
}

/** The throwaway logins and logouts before the storm (`--warm-up-logins`), on cold nodes. */
export type WarmUpPhase = LoginPhase;

/** What the drivers' answers to a round of logins add up to. */
function loginFigures(ctx: Ctx, results: CallsResult[]) {
  const ok = results.reduce((a, r) => a + r.ok, 0);
  const seconds = (Math.max(...results.map((r) => r.endUs)) - Math.min(...results.map((r) => r.startUs))) / 1e6;
  const perSecond = ok / seconds;
  return {
    seconds,
    logins: ok,
    failed: results.reduce((a, r) => a + r.failed, 0),
    errors: results.flatMap((r) => r.errors).slice(0, 5),
    loginsPerSecond: round(perSecond),
    loginsPerSecondPerNode: round(perSecond / ctx.nodes.length),
    latency: Histogram.merged(results.map((r) => r.hist)).summaryMs(),
  };
}

/**
 * Logins and logouts of throwaway users on the node(s) just started, before the storm: V8
 * compiles the login path while they run (on this 2-core machine its compiler threads took ~0.4
 * of a core through the first second of a storm on a cold node), so the storm measures what a
 * running node sustains. Each of their logins is followed by a logout, so their rate is not the
 * storm's on a cold node: `--warm-up-logins 0` measures that.
 */
export async function warmUp(ctx: Ctx): Promise<WarmUpPhase> {
  const count = ctx.opts.warmUpLogins;
  ctx.log(`warm-up: ${count} throwaway devices log in and out on the cold node(s), not counted in the storm …`);
  const m = meter(ctx);
  const results = await ctx.drivers.all<CallsResult>('warmUp', { count, concurrency: ctx.opts.loginConcurrency });
  const cost = m.stop();
  const { seconds, ...figures } = loginFigures(ctx, results);
  const phase: WarmUpPhase = { ...cost, ...figures };
  ctx.log(`  ${phase.logins} logged in and out (${phase.failed} failed) in ${round(seconds, 2)} s: ${phase.loginsPerSecond} login+logout/s on the cold node(s)`);
  if (phase.failed) ctx.log(`  errors: ${phase.errors.join(' | ')}`);
  await sleep(ctx.opts.settleSeconds * 1000);
  return phase;
}

export async function loginStorm(ctx: Ctx): Promise<LoginPhase> {
  const n = ctx.opts.workload.users;
  ctx.log(`login storm: ${n} devices over WebSockets, ${ctx.opts.loginConcurrency} connecting at once per driver …`);
  const m = meter(ctx);
  const progress = setInterval(() => {
    counters(ctx).then((c) => ctx.log(`  login storm: ${c.open} sockets open`), () => undefined);
  }, 2_000);
  const results = await ctx.drivers.all<CallsResult>('login', { concurrency: ctx.opts.loginConcurrency });
  clearInterval(progress);
  const cost = m.stop();
  const { seconds, ...figures } = loginFigures(ctx, results);
  const phase: LoginPhase = { ...cost, ...figures };
  ctx.log(`  ${phase.logins} logged in (${phase.failed} failed) in ${round(seconds, 2)} s: ${phase.loginsPerSecond} logins/s, p99 ${phase.latency.p99Ms} ms`);
  if (phase.failed) ctx.log(`  errors: ${phase.errors.join(' | ')}`);
  return phase;
}

export interface SubscribePhase extends PhaseCost {
  calls: number;
  failed: number;
  errors: string[];
  subscriptions: number;
  callsPerSecond: number;
  latency: LatencySummary;
  /** Current statuses pushed to the new watchers. */
  initialPushes: number;
}

export async function subscribeGraph(ctx: Ctx, maxPerCall: number): Promise<SubscribePhase> {
  const { users, subs } = ctx.opts.workload;
  ctx.log(`subscribe: every user to its ${subs} targets (${users * subs} subscriptions) …`);
  const base = await counters(ctx);
  const m = meter(ctx);
  const results = await ctx.drivers.all<CallsResult>('subscribe', { concurrency: ctx.opts.loginConcurrency, maxPerCall });
  const calls = results.reduce((a, r) => a + r.ok, 0);
  // A new subscriber is pushed the current status of its targets; let those land.
  const after = await waitDelivered(ctx, base, users * subs, 'subscribe', 1_000);
  const cost = m.stop();
  const seconds = (Math.max(...results.map((r) => r.endUs)) - Math.min(...results.map((r) => r.startUs))) / 1e6;
  const phase: SubscribePhase = {
    ...cost,
    calls,
    failed: results.reduce((a, r) => a + r.failed, 0),
    errors: results.flatMap((r) => r.errors).slice(0, 5),
    subscriptions: users * subs,
    callsPerSecond: round(calls / seconds),
    latency: Histogram.merged(results.map((r) => r.hist)).summaryMs(),
    initialPushes: after.notifications - base.notifications,
  };
  ctx.log(`  ${calls} subscribe calls (${phase.failed} failed) in ${round(seconds, 2)} s; ${phase.initialPushes} initial statuses pushed`);
  if (phase.failed) ctx.log(`  errors: ${phase.errors.join(' | ')}`);
  return phase;
}

/**
 * Sum of every live node's memory, each read after a full GC, one node at a time, so the
 * figure is what the users hold, not the garbage the phase before left. The GC stalls the
 * node it runs on: 72-96 ms at N=10 000 on 3 nodes, 237-251 ms per node at N=40 000, far
 * below the 4 s after which a clustered node fences itself (the longest is logged).
 */
export async function serverMemory(ctx: Ctx): Promise<MemorySample> {
  const samples: MemorySample[] = [];
  let longestMs = 0;
  for (const node of ctx.nodes.filter((n) => n.alive())) {
    const startedAt = Date.now();
    samples.push(await node.memory(true));
    longestMs = Math.max(longestMs, Date.now() - startedAt);
  }
  if (ctx.nodes.length > 1) ctx.log(`  memory read after a full GC on each node; the longest GC and reading took ${longestMs} ms`);
  return samples.reduce((a, s) => ({
    rss: a.rss + s.rss,
    heapUsed: a.heapUsed + s.heapUsed,
    heapTotal: a.heapTotal + s.heapTotal,
    external: a.external + s.external,
    arrayBuffers: a.arrayBuffers + s.arrayBuffers,
  }));
}

export interface MemoryPhase {
  /** Whether a full GC ran before each reading: always, since 27 Nov (before, embedded mode only). */
  forcedGc: boolean;
  before: MemorySample;
  after: MemorySample;
  onlineUsers: number;
  rssBytesPerOnlineUser: number;
  heapBytesPerOnlineUser: number;
  /** Heap plus buffers outside it (socket buffers are mostly external). */
  heapAndExternalBytesPerOnlineUser: number;
  /** The same reading again after the nodes were left idle (`--rest-seconds`). */
  atRest?: MemoryAtRest;
}

export interface MemoryAtRest {
  idleSeconds: number;
  sample: MemorySample;
  rssBytesPerOnlineUser: number;
  heapBytesPerOnlineUser: number;
}

export function memoryAtRest(before: MemorySample, rested: MemorySample, online: number, idleSeconds: number): MemoryAtRest {
  return { idleSeconds, sample: rested, ...perOnlineUser(before, rested, online) };
}

/** RSS and heap grown from `before` to `after`, per online user. */
function perOnlineUser(before: MemorySample, after: MemorySample, online: number) {
  return {
    rssBytesPerOnlineUser: round((after.rss - before.rss) / online),
    heapBytesPerOnlineUser: round((after.heapUsed - before.heapUsed) / online),
  };
}

export function memoryPerUser(before: MemorySample, after: MemorySample, online: number): MemoryPhase {
  return {
    forcedGc: true,
    before,
    after,
    onlineUsers: online,
    ...perOnlineUser(before, after, online),
    heapAndExternalBytesPerOnlineUser: round((after.heapUsed + after.external - before.heapUsed - before.external) / online),
  };
}
