import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface NodeProcess {
  nodeId: string;
  url: string;
  httpUrl: string;
  child: ChildProcess;
  /** Everything the node printed, for a failing test's message. */
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM and wait for a clean exit. */
  stop(): Promise<void>;
}

export interface NodeProcessOptions {
  adminKey: string;
  nodeId: string;
  nats?: string[];
  port?: number;
  env?: Record<string, string>;
}

/**
 * Starts `presence start` from the sources in a child process, so tests can kill,
 * stop and freeze a node for real, and resolves once it listens.
 */
export async function startNodeProcess(options: NodeProcessOptions): Promise<NodeProcess> {
  const args = ['--import', 'tsx', CLI, 'start', '--port', String(options.port ?? 0), '--host', '127.0.0.1', '--node-id', options.nodeId];
  if (options.nats) args.push('--nats', options.nats.join(','));
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      PRESENCE_ADMIN_KEY: options.adminKey,
      PRESENCE_LOG_LEVEL: process.env.PRESENCE_TEST_LOG_LEVEL ?? 'warn',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  // To read what the nodes of a failing test logged: PRESENCE_TEST_LOG_DIR=/tmp/nodes PRESENCE_TEST_LOG_LEVEL=info
  const logDir = process.env.PRESENCE_TEST_LOG_DIR;
  if (logDir) {
    mkdirSync(logDir, { recursive: true });
    const file = createWriteStream(join(logDir, `${options.nodeId}.log`), { flags: 'a' });
    child.stdout!.pipe(file);
    child.stderr!.pipe(file);
  }
  const port = await listeningPort(child, options.nodeId, () => output);
  const exited = once(child, 'exit');
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await exited;
  };
  return {
    nodeId: options.nodeId,
    url: `ws://127.0.0.1:${port}/ws`,
    httpUrl: `http://127.0.0.1:${port}`,
    child,
    output: () => output,
    kill,
    stop: () => kill('SIGTERM'),
  };
}

/**
 * Resolves with the port a `presence start` child prints in its banner, once it listens;
 * rejects if it exits first or takes over 60 s. `output` is everything it printed so far.
 */
export function listeningPort(child: ChildProcess, nodeId: string, output: () => string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node ${nodeId} did not start in 60 s:\n${output()}`)), 60_000);
    const onData = () => {
      const match = /devices: +ws:\/\/localhost:(\d+)\/ws/.exec(output());
      if (match) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(Number(match[1]));
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node ${nodeId} exited with ${code} before listening:\n${output()}`));
    });
  });
}
