/** The burst storm (as fast as possible) and the paced storm (a fixed offered rate). */
import { fanout } from '../graph.js';
import { Histogram, type HistogramData, type LatencySummary } from '../stats.js';
import { counters, meter, round, sleep, waitDelivered, type Ctx, type PhaseCost } from './context.js';

interface StormResult {
  sent: number;
  acked: number;
  failed: number;
  skipped: number;
  startUs: number;
  stopUs: number;
  lastAckUs: number;
  errors: string[];
  ack: HistogramData;
}

export interface StormPhase extends PhaseCost {
  statusChanges: number;
  failedChanges: number;
  errors: string[];
  statusChangesPerSecond: number;
  notificationsExpected: number;
  notificationsDelivered: number;
  notificationsPerSecond: number;
  /** Server CPU (all node processes) per delivered notification. */
  cpuUsPerNotification: number;
  /** Same, counting nats-server's CPU too (3-node mode). */
  cpuUsPerNotificationWithNats: number | null;
  /** Send time carried in the custom status → receipt by each watcher. */
  notificationLatency: LatencySummary;
  /** setSelfStatus request → its answer. */
  ackLatency: LatencySummary;
  offeredNotificationsPerSecond?: number;
  /** Per second since the storm began (by the monotonic clock's whole seconds): deliveries and worst latency. */
  timeline: Array<{ second: number; notifications: number; maxLatencyMs: number }>;
}

async function storm(ctx: Ctx, kind: 'burst' | 'paced'): Promise<StormPhase> {
  const w = ctx.opts.workload;
  const per = fanout(w);
  const k = ctx.drivers.drivers.length;
  const tag = kind === 'burst' ? 'b' : 'p';
  const seconds = kind === 'burst' ? ctx.opts.burstSeconds : ctx.opts.pacedSeconds;
  const changesPerSec = ctx.opts.pacedRate / per;
  ctx.log(
    kind === 'burst'
      ? `burst storm: custom-status changes as fast as ${ctx.opts.burstWindow} requests in flight allow, for ${seconds} s, each to ${per} watchers …`
      : `paced storm: ${ctx.opts.pacedRate} notifications/s offered (${round(changesPerSec, 1)} changes/s × ${per} watchers) for ${seconds} s …`,
  );
  await sleep(ctx.opts.settleSeconds * 1000);
  await ctx.drivers.all('latency', { tag, reset: true });
  const base = await counters(ctx);
  const m = meter(ctx);
  const progress = setInterval(() => {
    counters(ctx).then((c) => ctx.log(`  ${kind}: ${c.notifications - base.notifications} notifications delivered`), () => undefined);
  }, 2_000);
  const results = await ctx.drivers.all<StormResult>(
    kind,
    kind === 'burst'
      ? { durationMs: seconds * 1000, window: Math.max(1, Math.ceil(ctx.opts.burstWindow / k)) }
      : { durationMs: seconds * 1000, changesPerSec: changesPerSec / k },
  );
  clearInterval(progress);
  const acked = results.reduce((a, r) => a + r.acked, 0);
  const expected = acked * per;
  const after = await waitDelivered(ctx, base, expected, kind);
  const cost = m.stop();
  const delivered = after.notifications - base.notifications;
  const startUs = Math.min(...results.map((r) => r.startUs));
  const lastAckUs = Math.max(...results.map((r) => r.lastAckUs));
  const deliverySeconds = (after.lastNotifyUs - startUs) / 1e6;
  const parts = await ctx.drivers.all<HistogramData & { timeline: Array<[number, [number, number]]> }>('latency', { tag, reset: true });
  const latency = Histogram.merged(parts);
  const bySecond = new Map<number, [number, number]>();
  for (const part of parts) {
    for (const [second, [count, max]] of part.timeline) {
      const e = bySecond.get(second) ?? [0, 0];
      bySecond.set(second, [e[0] + count, Math.max(e[1], max)]);
    }
  }
  const firstSecond = Math.floor(startUs / 1e6);
  const timeline = [...bySecond]
    .sort((a, b) => a[0] - b[0])
    .map(([second, [count, max]]) => ({ second: second - firstSecond, notifications: count, maxLatencyMs: round(max / 1000, 1) }));
  const phase: StormPhase = {
    ...cost,
    statusChanges: acked,
    failedChanges: results.reduce((a, r) => a + r.failed, 0),
    errors: results.flatMap((r) => r.errors).slice(0, 5),
    statusChangesPerSecond: round(acked / ((lastAckUs - startUs) / 1e6)),
    notificationsExpected: expected,
    notificationsDelivered: delivered,
    notificationsPerSecond: round(delivered / deliverySeconds),
    cpuUsPerNotification: delivered ? round((cost.serverCpuSeconds * 1e6) / delivered, 2) : 0,
    cpuUsPerNotificationWithNats: cost.natsServerCpuSeconds === null || !delivered ? null : round(((cost.serverCpuSeconds + cost.natsServerCpuSeconds) * 1e6) / delivered, 2),
    notificationLatency: latency.summaryMs(),
    ackLatency: Histogram.merged(results.map((r) => r.ack)).summaryMs(),
    timeline,
  };
  if (kind === 'paced') phase.offeredNotificationsPerSecond = ctx.opts.pacedRate;
  ctx.log(
    `  ${acked} changes (${phase.failedChanges} failed), ${delivered}/${expected} notifications, ${phase.notificationsPerSecond}/s; ` +
      `latency p50 ${phase.notificationLatency.p50Ms} p99 ${phase.notificationLatency.p99Ms} p99.9 ${phase.notificationLatency.p999Ms} ms; ` +
      `server ${phase.cpuUsPerNotification} µs CPU/notification (${cost.serverCpuPercent} % core), drivers ${cost.driverCpuPercent} % core` +
      (cost.serverRunQueueWaitMsPerSecond === null ? '' : `; node event loops waited ${cost.serverRunQueueWaitMsPerSecond} ms/s for a core`),
  );
  if (phase.failedChanges) ctx.log(`  errors: ${phase.errors.join(' | ')}`);
  return phase;
}

export const burstStorm = (ctx: Ctx) => storm(ctx, 'burst');
export const pacedStorm = (ctx: Ctx) => storm(ctx, 'paced');
