import type { Workload } from '../graph.js';
import type { DriverPool, DriverSched } from '../driver/pool.js';
import { CpuMeter, nowUs } from '../procStat.js';
import type { BenchNode } from '../servers.js';

export interface BenchOptions {
  mode: 'embedded' | 'cluster';
  workload: Workload;
  drivers: number;
  /** The drivers' scheduling policy (`DriverSched`). */
  driversSched: DriverSched;
  nats: string;
  server: 'dist' | 'src';
  burstSeconds: number;
  burstWindow: number;
  pacedRate: number;
  pacedSeconds: number;
  /** Pause before each storm, so one storm's backlog does not land in the next. */
  settleSeconds: number;
  rawNatsSeconds: number;
  /**
   * After the memory reading, how long the nodes are left idle before a second one (0: none).
   * V8 gives memory back only once a node has been idle for a while (its memory reducer starts
   * ~8 s after the last full GC): the second reading is the memory of a node at rest.
   */
  restSeconds: number;
  loginConcurrency: number;
  /** Throwaway logins before the login storm, to warm the nodes and drivers up (0: none). */
  warmUpLogins: number;
  failover: boolean;
  /** Storms to run after login and subscribe. */
  phases: string[];
  failoverWriters: number;
  out: string;
  quiet: boolean;
}

export interface Ctx {
  opts: BenchOptions;
  nodes: BenchNode[];
  drivers: DriverPool;
  sdkAppID: number;
  secretKey: string;
  serverCpu: CpuMeter;
  /** The nodes' main threads' run-queue wait (µs): time they were ready to run but had no core. */
  serverWait: CpuMeter;
  driverCpu: CpuMeter;
  natsCpu: CpuMeter | undefined;
  log(line: string): void;
}

/** CPU and wall time of one phase: servers (the node processes), drivers, and nats-server apart. */
export interface PhaseCost {
  wallSeconds: number;
  serverCpuSeconds: number;
  /** The same, per node process in start order: on 3 nodes, whether one of them was the busy one. */
  serverCpuSecondsPerNode: number[];
  driverCpuSeconds: number;
  natsServerCpuSeconds: number | null;
  /** Share of the machine's cores: 100 % = one core busy for the whole phase. */
  serverCpuPercent: number;
  driverCpuPercent: number;
  /**
   * Milliseconds per second of the phase that the nodes' event loops (their main threads, summed)
   * were ready to run but waited for a core: the 2 cores' contention, which no code of the node
   * can shorten, and what a latency tail is made of when it is large. Null where the kernel
   * keeps no scheduler statistics.
   */
  serverRunQueueWaitMsPerSecond: number | null;
}

export interface Meter {
  stop(): PhaseCost;
}

export function meter(ctx: Ctx): Meter {
  const t0 = nowUs();
  const each0 = ctx.serverCpu.readEach();
  const w0 = ctx.serverWait.readEach();
  const d0 = ctx.driverCpu.read();
  const n0 = ctx.natsCpu?.read();
  return {
    stop() {
      const wall = (nowUs() - t0) / 1e6;
      // One reading per node, the total their sum: a node started during the phase counts whole.
      const spent = [...ctx.serverCpu.readEach()].map(([pid, micros]) => (micros - (each0.get(pid) ?? 0)) / 1e6);
      const server = spent.reduce((sum, seconds) => sum + seconds, 0);
      const perNode = spent.map((seconds) => round(seconds, 3));
      const waits = [...ctx.serverWait.readEach()].map(([pid, micros]) => micros - (w0.get(pid) ?? 0));
      const waitedMs = waits.length ? waits.reduce((sum, micros) => sum + micros, 0) / 1000 : null;
      const driver = (ctx.driverCpu.read() - d0) / 1e6;
      const nats = ctx.natsCpu && n0 !== undefined ? (ctx.natsCpu.read() - n0) / 1e6 : null;
      const pct = (cpu: number) => (wall > 0 ? round((cpu / wall) * 100, 1) : 0);
      return {
        wallSeconds: round(wall, 3),
        serverCpuSeconds: round(server, 3),
        serverCpuSecondsPerNode: perNode,
        driverCpuSeconds: round(driver, 3),
        natsServerCpuSeconds: nats === null ? null : round(nats, 3),
        serverCpuPercent: pct(server),
        driverCpuPercent: pct(driver),
        serverRunQueueWaitMsPerSecond: waitedMs === null || wall <= 0 ? null : round(waitedMs / wall, 1),
      };
    },
  };
}

export const round = (x: number, digits = 0): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Counters {
  notifications: number;
  selfPushes: number;
  pushFrames: number;
  closedByServer: number;
  lastNotifyUs: number;
  open: number;
}

export async function counters(ctx: Ctx): Promise<Counters> {
  const all = await ctx.drivers.all<Counters>('counters');
  return all.reduce((a, c) => ({
    notifications: a.notifications + c.notifications,
    selfPushes: a.selfPushes + c.selfPushes,
    pushFrames: a.pushFrames + c.pushFrames,
    closedByServer: a.closedByServer + c.closedByServer,
    lastNotifyUs: Math.max(a.lastNotifyUs, c.lastNotifyUs),
    open: a.open + c.open,
  }));
}

/**
 * Waits until `expected` notifications beyond `base` arrived, or none arrived for `quietMs`
 * (some may never come), printing progress. Returns the counters at the end.
 */
export async function waitDelivered(ctx: Ctx, base: Counters, expected: number, what: string, quietMs = 2_000, capMs = 120_000): Promise<Counters> {
  const start = Date.now();
  let last = base.notifications;
  let lastChange = Date.now();
  let lastPrint = Date.now();
  for (;;) {
    const c = await counters(ctx);
    const got = c.notifications - base.notifications;
    if (got >= expected) return c;
    if (c.notifications !== last) {
      last = c.notifications;
      lastChange = Date.now();
    }
    if (Date.now() - lastChange > quietMs || Date.now() - start > capMs) {
      ctx.log(`  ${what}: ${got} of ${expected} notifications arrived; ${Date.now() - lastChange} ms without more, going on`);
      return c;
    }
    if (Date.now() - lastPrint > 2_000) {
      ctx.log(`  ${what}: ${got} / ${expected} notifications delivered`);
      lastPrint = Date.now();
    }
    await sleep(50);
  }
}
