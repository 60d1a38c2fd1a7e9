/**
 * The presence benchmark: `npm run bench -- [options]` (see --help). Starts the nodes (one
 * embedded, or three on NATS), provisions an app and its subscription graph, drives the storms
 * from separate driver processes over real WebSockets, and writes a table and a JSON file.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { loadavg } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DriverPool } from './driver/pool.js';
import { reachable } from './reachable.js';
import { fanout, friendPairs, validateWorkload, type Workload } from './graph.js';
import { loginStorm, memoryAtRest, memoryPerUser, serverMemory, subscribeGraph, warmUp } from './phases/clients.js';
import { round, sleep, type BenchOptions, type Ctx } from './phases/context.js';
import { dropStorm } from './phases/drop.js';
import { failover } from './phases/failover.js';
import { rawNats, type RawNatsPhase } from './phases/rawNats.js';
import { burstStorm, pacedStorm } from './phases/storms.js';
import { purgeApp } from './natsState.js';
import { CpuMeter, findNatsServerPid, runQueueWaitMicros } from './procStat.js';
import { machine, renderText, targets, updateDocs, writeJson, type Results, type Summary } from './report.js';
import { startNode, waitBalanced, type BenchNode } from './servers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const USAGE = `npm run bench -- [options]

  --mode embedded|cluster   one node on the embedded transport, or 3 nodes on NATS (default embedded)
  --users N                 users, one device each (default 10000)
  --subs S                  subscriptions per user (default 50)
  --friends F               friends per user, even (default 0)
  --drivers K               driver processes holding the sockets (default 2, 1 below 1000 users)
  --drivers-sched normal|batch
                            the drivers' Linux scheduling policy: batch (SCHED_BATCH) keeps a driver
                            woken by a node's write from preempting the node (default normal)
  --nats URL                NATS for cluster mode and the raw baseline (default nats://127.0.0.1:4222)
  --server dist|src         run nodes from dist/ (npm run build first) or from src/ through tsx (default dist)
  --burst-seconds S         burst storm length (default 5)
  --burst-window W          setSelfStatus calls in flight over all drivers in the burst (default 512)
  --paced-rate R            notifications/s offered in the paced storm (default 10000)
  --paced-seconds S         paced storm length (default 10)
  --raw-nats-seconds S      raw NATS baseline length (default 5)
  --settle-seconds S        pause before each storm (default 2)
  --rest-seconds S          after the memory reading, leave the nodes idle S seconds and read their
                            memory again, as a node at rest holds it (default 0: no second reading;
                            V8 gives memory back ~20-25 s after a storm, so try 30)
  --login-concurrency C     logins in flight per driver (default 200)
  --warm-up-logins K        before the login storm, K throwaway devices log in and out, so the
                            storm meets nodes whose login path V8 has compiled already, as a running
                            node's is (default min(3000, N); 0: the storm meets nodes just started)
  --failover-writers W      writers during the failover phase (default 240)
  --phases LIST             storms to run after login and subscribe, of burst,paced,drop,failover
                            (default all; failover only in cluster mode)
  --no-failover             skip the failover phase in cluster mode
  --keep-state              leave the app's keys in the NATS KV buckets after a cluster run (default: removed,
                            so the next run's nodes do not restore this run's users)
  --out PATH                JSON file (default bench/results/<mode>-n<N>-s<S>-<time>.json)
  --docs                    also replace this mode's block in docs/performance.md
`;

function parseOptions(argv: string[]): BenchOptions & { docs: boolean; keepState: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      mode: { type: 'string', default: 'embedded' },
      users: { type: 'string', default: '10000' },
      subs: { type: 'string', default: '50' },
      friends: { type: 'string', default: '0' },
      drivers: { type: 'string' },
      'drivers-sched': { type: 'string', default: 'normal' },
      nats: { type: 'string', default: process.env.PRESENCE_BENCH_NATS ?? 'nats://127.0.0.1:4222' },
      server: { type: 'string', default: 'dist' },
      'burst-seconds': { type: 'string', default: '5' },
      'burst-window': { type: 'string', default: '512' },
      'paced-rate': { type: 'string', default: '10000' },
      'paced-seconds': { type: 'string', default: '10' },
      'raw-nats-seconds': { type: 'string', default: '5' },
      'settle-seconds': { type: 'string', default: '2' },
      'rest-seconds': { type: 'string', default: '0' },
      'login-concurrency': { type: 'string', default: '200' },
      'warm-up-logins': { type: 'string' },
      'failover-writers': { type: 'string', default: '240' },
      'no-failover': { type: 'boolean', default: false },
      'keep-state': { type: 'boolean', default: false },
      phases: { type: 'string', default: 'burst,paced,drop,failover' },
      out: { type: 'string' },
      docs: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const mode = values.mode === '3node' || values.mode === 'cluster' ? 'cluster' : values.mode === 'embedded' ? 'embedded' : undefined;
  if (!mode) throw new Error(`--mode must be embedded or cluster, got ${values.mode}`);
  if (values.server !== 'dist' && values.server !== 'src') throw new Error('--server must be dist or src');
  const workload: Workload = { users: Number(values.users), subs: Number(values.subs), friends: Number(values.friends) };
  validateWorkload(workload);
  /** The option as a number; 0 only where `zeroAllowed`. */
  const numberOption = (name: string, v: string, zeroAllowed: boolean) => {
    const n = Number(v);
    if (!(zeroAllowed ? n >= 0 : n > 0)) throw new Error(`--${name} must be a ${zeroAllowed ? 'number of 0 or more' : 'positive number'}, got ${v}`);
    return n;
  };
  const positive = (name: string, v: string) => numberOption(name, v, false);
  const driversSched = values['drivers-sched'];
  if (driversSched !== 'normal' && driversSched !== 'batch') throw new Error(`--drivers-sched must be normal or batch, got ${driversSched}`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const phaseList = values.phases!.split(',').map((x) => x.trim()).filter(Boolean);
  for (const phase of phaseList) {
    if (!['burst', 'paced', 'drop', 'failover'].includes(phase)) throw new Error(`--phases: unknown phase ${phase}`);
  }
  return {
    mode,
    workload,
    drivers: values.drivers ? positive('drivers', values.drivers) : workload.users < 1000 ? 1 : 2,
    driversSched,
    nats: values.nats!,
    server: values.server,
    burstSeconds: positive('burst-seconds', values['burst-seconds']!),
    burstWindow: positive('burst-window', values['burst-window']!),
    pacedRate: positive('paced-rate', values['paced-rate']!),
    pacedSeconds: positive('paced-seconds', values['paced-seconds']!),
    rawNatsSeconds: positive('raw-nats-seconds', values['raw-nats-seconds']!),
    settleSeconds: Number(values['settle-seconds']),
    restSeconds: numberOption('rest-seconds', values['rest-seconds']!, true),
    loginConcurrency: positive('login-concurrency', values['login-concurrency']!),
    warmUpLogins: values['warm-up-logins'] === undefined ? Math.min(3_000, workload.users) : numberOption('warm-up-logins', values['warm-up-logins'], true),
    failover: mode === 'cluster' && !values['no-failover'] && phaseList.includes('failover'),
    phases: phaseList,
    failoverWriters: positive('failover-writers', values['failover-writers']!),
    out: values.out ?? `${ROOT}bench/results/${mode}-n${workload.users}-s${workload.subs}-${stamp}.json`,
    quiet: values.quiet!,
    docs: values.docs!,
    keepState: values['keep-state']!,
  };
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const startedAt = new Date().toISOString();
  // The machine may be shared (other test runs): its load is kept with the figures.
  const loadAtStart = loadavg().map((x) => round(x, 2));
  const t0 = Date.now();
  const log = (line: string) => {
    if (!opts.quiet || !line.startsWith('  ')) process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
  };
  const w = opts.workload;
  const adminKey = randomBytes(16).toString('hex');
  const sdkAppID = randomInt(1_500_000_000, 2_000_000_000);
  const secretKey = randomBytes(24).toString('hex');
  const natsUp = await reachable(opts.nats);
  if (opts.mode === 'cluster' && !natsUp) throw new Error(`cluster mode needs NATS at ${opts.nats}`);

  mkdirSync(dirname(opts.out), { recursive: true });
  const nodes: BenchNode[] = [];
  let drivers: DriverPool | undefined;
  const cleanup = async () => {
    await drivers?.stop().catch(() => undefined);
    await Promise.all(nodes.map((n) => n.kill('SIGTERM').catch(() => undefined)));
    if (opts.mode === 'cluster' && !opts.keepState) {
      const purged = await purgeApp(opts.nats, sdkAppID).catch((error: Error) => ({ error: error.message }));
      log(`removed app ${sdkAppID}'s keys from the NATS KV buckets: ${JSON.stringify(purged)}`);
    }
  };
  process.once('SIGINT', () => {
    void cleanup().finally(() => process.exit(130));
  });

  try {
    const run = randomBytes(3).toString('hex');
    const count = opts.mode === 'cluster' ? 3 : 1;
    log(`starting ${count} node process(es) from ${opts.server} (${opts.mode}${opts.mode === 'cluster' ? ` on ${opts.nats}` : ''}); app ${sdkAppID}; N=${w.users} S=${w.subs} F=${w.friends}`);
    for (let i = 0; i < count; i++) {
      nodes.push(
        await startNode({
          nodeId: `bench-${run}-${'abc'[i]}`,
          adminKey,
          source: opts.server,
          ...(opts.mode === 'cluster' ? { nats: opts.nats } : {}),
        }),
      );
    }
    if (opts.mode === 'cluster') {
      log('  waiting for the 3 nodes to share the 1024 shards …');
      await waitBalanced(nodes[0]!, nodes.map((n) => n.nodeId), 90_000);
    }
    const per = fanout(w);
    await nodes[0]!.admin.putApp(sdkAppID, {
      secretKey,
      edition: 'premium',
      userStatusEnabled: true,
      friendStatusAutoNotify: w.friends > 0,
      limits: {
        // No heartbeats are sent during the run: the storms end long before this.
        heartbeatIntervalMs: 600_000,
        heartbeatTimeoutMs: 900_000,
        subscriptionCap: Math.min(10_000, Math.max(200, per + 10)),
        maxSubscribePerCall: Math.min(1_000, Math.max(100, w.subs)),
        rateLimit: { count: 10_000, windowMs: 1_000 },
      },
    });
    for (const node of nodes) {
      for (let tries = 0; ; tries++) {
        try {
          await node.admin.getApp(sdkAppID);
          break;
        } catch (error) {
          if (tries > 100) throw error;
          await sleep(100);
        }
      }
    }
    if (w.friends > 0) {
      const pairs = friendPairs(w);
      log(`provisioning ${pairs.length} friend pairs over the admin API …`);
      for (let from = 0; from < pairs.length; from += 10_000) await nodes[0]!.admin.friends(sdkAppID, { add: pairs.slice(from, from + 10_000) });
    }

    const natsPid = findNatsServerPid();
    const ctx: Ctx = {
      opts,
      nodes,
      drivers: (drivers = DriverPool.start(opts.drivers, opts.driversSched)),
      sdkAppID,
      secretKey,
      serverCpu: new CpuMeter(() => nodes.map((n) => n.pid)),
      serverWait: new CpuMeter(() => nodes.map((n) => n.pid), runQueueWaitMicros),
      driverCpu: new CpuMeter(() => drivers!.pids),
      natsCpu: natsPid !== undefined && opts.mode === 'cluster' ? new CpuMeter(() => [natsPid]) : undefined,
      log,
    };
    await ctx.drivers.all('init', (d) => ({ driverIndex: d.index, drivers: opts.drivers, workload: w, sdkAppID, secretKey, urls: nodes.map((n) => n.url) }));

    const raw: RawNatsPhase = natsUp
      ? await rawNats(ctx)
      : { servers: opts.nats, payloadBytes: 0, published: 0, delivered: 0, deliveriesPerSecond: null, publisherCpuSeconds: null, error: 'NATS not reachable' };
    if (!natsUp) log(`raw NATS: skipped, nothing listens at ${opts.nats}`);

    // Read before the warm-up: whatever it leaves behind (a grown young generation, its users'
    // stored snapshots) counts against the storm's users, not for them.
    const before = await serverMemory(ctx);
    const warm = opts.warmUpLogins > 0 ? await warmUp(ctx) : undefined;
    const login = await loginStorm(ctx);
    const subscribe = await subscribeGraph(ctx, Math.min(1_000, Math.max(100, w.subs)));
    const after = await serverMemory(ctx);
    const memory = memoryPerUser(before, after, login.logins);
    log(`memory: ${memory.rssBytesPerOnlineUser} B RSS, ${memory.heapBytesPerOnlineUser} B heap per online user (after a full GC)`);
    if (opts.restSeconds > 0) {
      log(`memory at rest: leaving the nodes idle for ${opts.restSeconds} s …`);
      await sleep(opts.restSeconds * 1000);
      memory.atRest = memoryAtRest(before, await serverMemory(ctx), login.logins, opts.restSeconds);
      log(`memory at rest: ${memory.atRest.rssBytesPerOnlineUser} B RSS, ${memory.atRest.heapBytesPerOnlineUser} B heap per online user after ${opts.restSeconds} s idle`);
    }
    const burst = opts.phases.includes('burst') ? await burstStorm(ctx) : undefined;
    const paced = opts.phases.includes('paced') ? await pacedStorm(ctx) : undefined;
    const drop = opts.phases.includes('drop') ? await dropStorm(ctx) : undefined;
    const fail = opts.failover ? await failover(ctx) : undefined;

    const summary: Summary = {
      mode: opts.mode,
      nodes: nodes.length,
      users: w.users,
      subs: w.subs,
      friends: w.friends,
      cpuUsPerNotification: burst?.cpuUsPerNotification ?? null,
      pacedP99Ms: paced?.notificationLatency.p99Ms ?? null,
      bytesPerOnlineUser: memory.rssBytesPerOnlineUser,
      loginsPerSecond: login.loginsPerSecond,
      loginsPerSecondPerNode: login.loginsPerSecondPerNode,
      notificationsPerSecond: burst?.notificationsPerSecond ?? null,
      rawNatsDeliveriesPerSecond: raw.deliveriesPerSecond,
      fanoutVsRawNats: raw.deliveriesPerSecond && burst ? round(burst.notificationsPerSecond / raw.deliveriesPerSecond, 3) : null,
    };
    if (opts.mode === 'cluster') {
      summary.failoverSeconds = fail?.failoverSeconds ?? null;
      summary.lostAcknowledgedWrites = fail?.lostAcknowledgedWrites ?? 0;
    }
    const phases: Results['phases'] = {
      rawNats: raw,
      ...(warm ? { warmUp: warm } : {}),
      login,
      subscribe,
      memory,
      ...(burst ? { burst } : {}),
      ...(paced ? { paced } : {}),
      ...(drop ? { drop } : {}),
      ...(fail ? { failover: fail } : {}),
    };
    const results: Results = {
      summary,
      targets: targets(summary, phases),
      command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
      startedAt,
      loadAverage: { atStart: loadAtStart, atEnd: loadavg().map((x) => round(x, 2)) },
      machine: machine(),
      options: opts,
      sdkAppID,
      phases,
    };
    writeJson(opts.out, results);
    if (opts.docs) updateDocs(`${ROOT}docs/performance.md`, results);
    process.stdout.write(`\n${renderText(results)}\n\nJSON: ${opts.out}\n`);
  } catch (error) {
    for (const node of nodes) if (!node.alive() || process.env.PRESENCE_BENCH_DEBUG) process.stderr.write(`--- ${node.nodeId} output ---\n${node.output().slice(-4000)}\n`);
    throw error;
  } finally {
    // What the nodes logged (warnings and errors), beside the JSON: *.log is not committed.
    for (const node of nodes) {
      try {
        writeFileSync(opts.out.replace(/\.json$/, '') + `.${node.nodeId}.log`, node.output());
      } catch {
        // The results folder may not exist when the run failed early.
      }
    }
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exit(1);
  },
);
