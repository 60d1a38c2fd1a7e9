/**
 * Starts and stops the node processes under test and reads their CPU and memory. Each node is
 * `node dist/cli/main.js start` (or the sources through tsx with `--server src`), preloaded with
 * serverProbe.mjs so the benchmark can ask it for its heap after a GC over the IPC channel.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AdminClient } from '../test/support/admin.js';
import { listeningPort } from '../test/support/nodeProcess.js';
import { cpuMicros } from './procStat.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PROBE = fileURLToPath(new URL('./serverProbe.mjs', import.meta.url));
export const DIST_CLI = `${ROOT}dist/cli/main.js`;
const SRC_CLI = `${ROOT}src/cli/main.ts`;

export type ServerSource = 'dist' | 'src';

export interface MemorySample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

export interface BenchNode {
  nodeId: string;
  port: number;
  url: string;
  httpUrl: string;
  pid: number;
  child: ChildProcess;
  admin: AdminClient;
  output(): string;
  alive(): boolean;
  memory(gc?: boolean): Promise<MemorySample>;
  cpuMicros(): number | undefined;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface StartNodeOptions {
  nodeId: string;
  adminKey: string;
  source: ServerSource;
  nats?: string;
  logLevel?: string;
}

export async function startNode(options: StartNodeOptions): Promise<BenchNode> {
  if (options.source === 'dist' && !existsSync(DIST_CLI)) {
    throw new Error(`${DIST_CLI} is missing: run \`npm run build\` first, or pass --server src`);
  }
  const entry = options.source === 'dist' ? [DIST_CLI] : ['--import', 'tsx', SRC_CLI];
  // PRESENCE_BENCH_NODE_ARGS adds flags to the nodes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile them.
  const extra = (process.env.PRESENCE_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  // A clustered node hands its shards over before it exits, which can outlast 15 s after a
  // large run; a profiled node writes its profile only if it exits by itself.
  const graceMs = extra.some((arg) => arg.startsWith('--cpu-prof') || arg.startsWith('--heap-prof')) ? 120_000 : 15_000;
  const args = [...extra, '--expose-gc', '--import', PROBE, ...entry, 'start', '--port', '0', '--host', '127.0.0.1', '--node-id', options.nodeId];
  if (options.nats) args.push('--nats', options.nats);
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, PRESENCE_ADMIN_KEY: options.adminKey, PRESENCE_LOG_LEVEL: options.logLevel ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  const keep = (chunk: string) => {
    output += chunk;
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.setEncoding('utf8').on('data', keep);
  child.stderr!.setEncoding('utf8').on('data', keep);
  const port = await listeningPort(child, options.nodeId, () => output);
  const exited = once(child, 'exit');
  let probeId = 0;
  const alive = () => child.exitCode === null && child.signalCode === null;
  const httpUrl = `http://127.0.0.1:${port}`;
  return {
    nodeId: options.nodeId,
    port,
    url: `ws://127.0.0.1:${port}/ws`,
    httpUrl,
    pid: child.pid!,
    child,
    admin: new AdminClient(httpUrl, options.adminKey),
    output: () => output,
    alive,
    cpuMicros: () => cpuMicros(child.pid!),
    memory(gc = true) {
      const id = ++probeId;
      return new Promise<MemorySample>((resolve, reject) => {
        const timer = setTimeout(() => {
          child.off('message', onMessage);
          reject(new Error(`node ${options.nodeId} did not answer the memory probe`));
        }, 30_000);
        const onMessage = (message: { probe?: string; id?: number } & MemorySample) => {
          if (message?.probe !== 'memory' || message.id !== id) return;
          clearTimeout(timer);
          child.off('message', onMessage);
          resolve({ rss: message.rss, heapUsed: message.heapUsed, heapTotal: message.heapTotal, external: message.external, arrayBuffers: message.arrayBuffers });
        };
        child.on('message', onMessage);
        child.send({ probe: 'memory', id, gc });
      });
    },
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (!alive()) return;
      child.kill(signal);
      const timer = setTimeout(() => alive() && child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface ClusterNodeView {
  nodeId: string;
  shards: number;
  ownedShards?: string;
}

export interface ClusterView {
  transport: string;
  shardCount: number;
  unownedShards?: number;
  nodes: ClusterNodeView[];
}

/** Whether a view shows exactly `nodeIds` serving every shard between them, each some. */
export function isBalanced(view: ClusterView, nodeIds: string[]): boolean {
  if ((view.unownedShards ?? 0) !== 0) return false;
  const live = view.nodes.filter((n) => nodeIds.includes(n.nodeId));
  if (live.length !== nodeIds.length || live.some((n) => n.shards <= 0)) return false;
  const sum = live.reduce((total, n) => total + n.shards, 0);
  const others = view.nodes.filter((n) => !nodeIds.includes(n.nodeId)).reduce((total, n) => total + n.shards, 0);
  return sum === view.shardCount && others === 0;
}

/** Polls /admin/cluster on `via` until `nodeIds` share all shards; returns the last view. */
export async function waitBalanced(via: BenchNode, nodeIds: string[], timeoutMs: number, everyMs = 250): Promise<ClusterView> {
  const deadline = Date.now() + timeoutMs;
  let view: ClusterView | undefined;
  for (;;) {
    try {
      view = (await via.admin.cluster()) as unknown as ClusterView;
      if (isBalanced(view, nodeIds)) return view;
    } catch {
      // The node may be busy; try again.
    }
    if (Date.now() > deadline) throw new Error(`cluster not balanced over ${nodeIds.join(',')} in ${timeoutMs} ms: ${JSON.stringify(view)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
