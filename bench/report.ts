/** The readable table, the JSON file under bench/results/, and the block in docs/performance.md. */
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';
import { dirname } from 'node:path';
import type { BenchOptions } from './phases/context.js';
import type { LoginPhase, MemoryPhase, SubscribePhase, WarmUpPhase } from './phases/clients.js';
import type { StormPhase } from './phases/storms.js';
import type { DropPhase } from './phases/drop.js';
import type { FailoverPhase } from './phases/failover.js';
import type { RawNatsPhase } from './phases/rawNats.js';

export interface Summary {
  mode: 'embedded' | 'cluster';
  nodes: number;
  users: number;
  subs: number;
  friends: number;
  /** null when the phase was not run (--phases). */
  cpuUsPerNotification: number | null;
  pacedP99Ms: number | null;
  bytesPerOnlineUser: number;
  loginsPerSecond: number;
  loginsPerSecondPerNode: number;
  notificationsPerSecond: number | null;
  rawNatsDeliveriesPerSecond: number | null;
  fanoutVsRawNats: number | null;
  failoverSeconds?: number | null;
  lostAcknowledgedWrites?: number;
}

export interface Results {
  summary: Summary;
  targets: Array<{ target: string; limit: string; measured: string; met: boolean | null }>;
  command: string;
  startedAt: string;
  /** 1, 5 and 15 minute load averages at the start and the end of the run. */
  loadAverage: { atStart: number[]; atEnd: number[] };
  machine: Machine;
  options: BenchOptions;
  sdkAppID: number;
  phases: {
    rawNats: RawNatsPhase;
    warmUp?: WarmUpPhase;
    login: LoginPhase;
    subscribe: SubscribePhase;
    memory: MemoryPhase;
    burst?: StormPhase;
    paced?: StormPhase;
    drop?: DropPhase;
    failover?: FailoverPhase;
  };
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  natsServer: string | null;
  kernel: string;
  /** HEAD of the repository, and whether src/ had uncommitted changes (the nodes ran dist/ or src/). */
  commit: string;
}

export function machine(): Machine {
  let natsServer: string | null = null;
  try {
    natsServer = execFileSync('nats-server', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    natsServer = null;
  }
  let kernel = '';
  try {
    kernel = execFileSync('uname', ['-sr'], { encoding: 'utf8' }).trim();
  } catch {
    kernel = process.platform;
  }
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    if (execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim()) commit += ' (src modified)';
  } catch {
    // Not a git checkout.
  }
  return {
    commit,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    natsServer,
    kernel,
  };
}

export function targets(summary: Summary, phases: Results['phases']): Results['targets'] {
  const cluster = summary.mode === 'cluster';
  const cpu = summary.cpuUsPerNotification;
  const p99 = summary.pacedP99Ms;
  const rows: Results['targets'] = [
    { target: 'server CPU per notification (burst)', limit: '≤ 10 µs', measured: cpu === null ? 'not run' : `${cpu} µs`, met: cpu === null ? null : cpu <= 10 },
    {
      target: `paced ${phases.paced?.offeredNotificationsPerSecond ?? ''}/s p99`,
      limit: cluster ? '≤ 15 ms' : '≤ 5 ms',
      measured: p99 === null ? 'not run' : `${p99} ms`,
      met: p99 === null ? null : p99 <= (cluster ? 15 : 5),
    },
    { target: 'memory per online user (RSS)', limit: '≤ 6 KiB', measured: `${(summary.bytesPerOnlineUser / 1024).toFixed(2)} KiB`, met: summary.bytesPerOnlineUser <= 6 * 1024 },
    { target: 'logins/s per node', limit: '≥ 5000', measured: `${summary.loginsPerSecondPerNode}`, met: summary.loginsPerSecondPerNode >= 5000 },
    {
      target: 'fan-out vs raw NATS',
      limit: '≥ 50 %',
      measured: summary.fanoutVsRawNats === null ? 'n/a' : `${(summary.fanoutVsRawNats * 100).toFixed(1)} %`,
      met: summary.fanoutVsRawNats === null ? null : summary.fanoutVsRawNats >= 0.5,
    },
  ];
  if (cluster) {
    rows.push(
      { target: 'failover', limit: '≤ 3 s', measured: summary.failoverSeconds == null ? 'not measured' : `${summary.failoverSeconds} s`, met: summary.failoverSeconds == null ? false : summary.failoverSeconds <= 3 },
      { target: 'acknowledged writes lost', limit: '0', measured: `${summary.lostAcknowledgedWrites}`, met: summary.lostAcknowledgedWrites === 0 },
    );
  }
  return rows;
}

const pad = (rows: string[][]): string => {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
};

const num = (x: number | null | undefined, digits = 0): string => (x === null || x === undefined ? '—' : x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

/** One row per phase: throughput, latency, CPU of servers and drivers. */
export function phaseTable(r: Results): string {
  const p = r.phases;
  const cpu = (x: { serverCpuPercent: number; driverCpuPercent: number; natsServerCpuSeconds: number | null; wallSeconds: number }) => [
    `${num(x.serverCpuPercent)} %`,
    `${num(x.driverCpuPercent)} %`,
    x.natsServerCpuSeconds === null ? '—' : `${num((x.natsServerCpuSeconds / x.wallSeconds) * 100)} %`,
  ];
  const lat = (l: { p50Ms: number; p99Ms: number; p999Ms: number }) => `${num(l.p50Ms, 2)} / ${num(l.p99Ms, 2)} / ${num(l.p999Ms, 2)}`;
  const loginRow = (label: string, phase: LoginPhase, work: string, rate: string) => [
    label,
    num(phase.wallSeconds, 2),
    `${num(phase.logins)} ${work} (${phase.failed} failed)`,
    `${num(phase.loginsPerSecond)} ${rate}`,
    lat(phase.latency),
    ...cpu(phase),
    '—',
  ];
  const stormRow = (label: string, storm: StormPhase) => [
    label,
    num(storm.wallSeconds, 2),
    `${num(storm.statusChanges)} changes → ${num(storm.notificationsDelivered)} notifs`,
    `${num(storm.notificationsPerSecond)} notifs/s`,
    lat(storm.notificationLatency),
    ...cpu(storm),
    num(storm.cpuUsPerNotification, 2),
  ];
  const rows: string[][] = [
    ['phase', 'wall s', 'work', 'throughput', 'latency p50 / p99 / p99.9 ms', 'server CPU', 'drivers CPU', 'nats-server CPU', 'server µs/notif'],
    [
      'raw NATS pub→sub',
      num(r.options.rawNatsSeconds, 1),
      `${num(p.rawNats.delivered)} msgs of ${p.rawNats.payloadBytes} B`,
      p.rawNats.deliveriesPerSecond === null ? `failed: ${p.rawNats.error ?? ''}` : `${num(p.rawNats.deliveriesPerSecond)} deliveries/s`,
      '—',
      '—',
      '—',
      '—',
      '—',
    ],
    ...(p.warmUp ? [loginRow('warm-up (cold node)', p.warmUp, 'logins and logouts', 'login+logout/s')] : []),
    loginRow('login storm', p.login, 'logins', 'logins/s'),
    [
      'subscribe',
      num(p.subscribe.wallSeconds, 2),
      `${num(p.subscribe.subscriptions)} subs in ${num(p.subscribe.calls)} calls`,
      `${num(p.subscribe.callsPerSecond)} calls/s`,
      lat(p.subscribe.latency),
      ...cpu(p.subscribe),
      '—',
    ],
    ...(p.burst ? [stormRow('burst storm', p.burst)] : []),
    ...(p.paced ? [stormRow(`paced storm ${num(p.paced.offeredNotificationsPerSecond)}/s`, p.paced)] : []),
    ...(p.drop
      ? [
          [
            'drop storm',
            num(p.drop.wallSeconds, 2),
            `${num(p.drop.socketsDestroyed)} sockets → ${num(p.drop.offlineSeen)}/${num(p.drop.offlineExpected)} OFFLINE seen`,
            p.drop.allOfflineSeconds === null
              ? `NOT all seen: ${num((p.drop.offlineSeen / Math.max(1, p.drop.offlineExpected)) * 100, 1)} % after ${num(p.drop.lastOfflineSeenSeconds, 1)} s`
              : `all seen in ${num(p.drop.allOfflineSeconds, 3)} s`,
            lat(p.drop.offlineLatency),
            ...cpu(p.drop),
            '—',
          ],
        ]
      : []),
  ];
  if (p.failover) {
    const f = p.failover;
    rows.push([
      'failover (SIGKILL 1 of 3)',
      num(f.wallSeconds, 2),
      `${num(f.writes)} writes by ${f.writers} writers, ${f.failedRequests} failed`,
      `re-owned ${num(f.shardsReownedSeconds, 2)} s, served ${num(f.servedAgainSeconds, 2)} s; ${f.callsInFlightAtKill} calls in flight at the kill waited up to ${num(f.callsInFlightAtKillMaxWaitSeconds, 1)} s; ${f.lostAcknowledgedWrites} acked writes lost`,
      '—',
      ...cpu(f),
      '—',
    ]);
  }
  return pad(rows);
}

export function memoryLine(r: Results): string {
  const m = r.phases.memory;
  return (
    `memory per online user (${num(m.onlineUsers)} online, connections and ${r.summary.subs} subscriptions each included): ` +
    `RSS ${num(m.rssBytesPerOnlineUser)} B, heap ${num(m.heapBytesPerOnlineUser)} B, heap+external ${num(m.heapAndExternalBytesPerOnlineUser)} B` +
    (m.forcedGc ? ' (after a full GC)' : ' (no GC forced)') +
    (m.atRest
      ? `; at rest, after ${m.atRest.idleSeconds} s idle: RSS ${num(m.atRest.rssBytesPerOnlineUser)} B, heap ${num(m.atRest.heapBytesPerOnlineUser)} B`
      : '')
  );
}

export function targetTable(r: Results): string {
  return pad([['target', 'limit', 'measured', 'met'], ...r.targets.map((t) => [t.target, t.limit, t.measured, t.met === null ? 'n/a' : t.met ? 'yes' : 'NO'])]);
}

export function renderText(r: Results): string {
  const s = r.summary;
  return [
    `presence-cluster benchmark — ${s.mode === 'embedded' ? 'embedded, 1 node' : `${s.nodes} nodes on NATS`}, N=${s.users} users, S=${s.subs} subscriptions, F=${s.friends} friends, ${r.options.drivers} driver process(es)`,
    '',
    phaseTable(r),
    '',
    memoryLine(r),
    '',
    targetTable(r),
  ].join('\n');
}

/** Writes the JSON atomically (a .tmp then a rename). */
export function writeJson(path: string, results: Results): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(results, null, 2)}\n`);
  renameSync(tmp, path);
}

/** Replaces this mode's block in docs/performance.md (between markers), keeping the rest. */
export function updateDocs(path: string, results: Results): void {
  const { mode, users, subs, friends } = results.summary;
  const phases = results.options.phases ?? ['burst', 'paced', 'drop', 'failover'];
  const partial = phases.join(',') !== 'burst,paced,drop,failover';
  const key = `${mode}:n${users}:s${subs}${friends ? `:f${friends}` : ''}${partial ? `:${phases.join('+')}` : ''}`;
  const start = `<!-- bench:${key}:start -->`;
  const end = `<!-- bench:${key}:end -->`;
  const m = results.machine;
  const block = [
    start,
    `### ${mode === 'embedded' ? 'Embedded, one node' : `${results.summary.nodes} nodes on NATS`}: N=${users}, S=${subs}, F=${friends}${partial ? ` (storms: ${phases.join(', ')})` : ''}`,
    '',
    `Run ${results.startedAt} on ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.kernel}, Node ${m.node}${m.natsServer ? `, ${m.natsServer}` : ''}, commit ${m.commit}; load average ${results.loadAverage.atStart.join(' ')} at the start, ${results.loadAverage.atEnd.join(' ')} at the end:`,
    '',
    '```sh',
    results.command,
    '```',
    '',
    phaseTable(results),
    '',
    memoryLine(results),
    '',
    targetTable(results),
    end,
  ].join('\n');
  let text = existsSync(path) ? readFileSync(path, 'utf8') : '# Performance\n';
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a >= 0 && b > a) text = text.slice(0, a) + block + text.slice(b + end.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(path, text);
}
