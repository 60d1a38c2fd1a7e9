/**
 * A device in its own process, so a test can kill it for real (SIGKILL leaves no chance to log
 * out or close the socket):
 *
 *   node --import tsx test/support/clientProcess.ts <url> <sdkAppID> <userID> <userSig> [deviceId]
 *
 * logs in with the SDK, prints `ready` and stays alive until killed. A failed login prints
 * `error <code> <desc>` and exits with 1. Tests start it with {@link spawnClientProcess}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PresenceClient } from '../../src/client/index.js';

const SCRIPT = fileURLToPath(import.meta.url);
const READY_TIMEOUT_MS = 30_000;

export interface ClientProcess {
  child: ChildProcess;
  /** Resolves with the exit code or signal once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
  /** Sends `signal` (default SIGKILL) and waits for the process to end. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts a device process and resolves once it printed `ready` (logged in). */
export async function spawnClientProcess(
  url: string,
  sdkAppID: number,
  userID: string,
  userSig: string,
  deviceId?: string,
): Promise<ClientProcess> {
  const args = ['--import', 'tsx', SCRIPT, url, String(sdkAppID), userID, userSig];
  if (deviceId) args.push(deviceId);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`client process of ${userID} not ready in ${READY_TIMEOUT_MS} ms:\n${output}`)), READY_TIMEOUT_MS);
    const onData = () => {
      if (/^ready$/m.test(output)) done();
    };
    const onExit = () => done(new Error(`client process of ${userID} exited before ready:\n${output}`));
    const done = (error?: Error) => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      if (error) {
        child.kill('SIGKILL');
        reject(error);
      } else resolve();
    };
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
  return {
    child,
    exited,
    output: () => output,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

async function main(argv: string[]): Promise<void> {
  const [url, sdkAppID, userID, userSig, deviceId] = argv;
  if (!url || !sdkAppID || !userID || !userSig) {
    process.stderr.write('usage: clientProcess.ts <url> <sdkAppID> <userID> <userSig> [deviceId]\n');
    process.exit(2);
  }
  const client = new PresenceClient({ url, sdkAppID: Number(sdkAppID) });
  try {
    await client.login(userID, userSig, deviceId ? { deviceId } : {});
  } catch (error) {
    const { code, desc } = error as { code?: number; desc?: string };
    process.stdout.write(`error ${code ?? ''} ${desc ?? String(error)}\n`);
    process.exit(1);
  }
  process.stdout.write('ready\n');
  // The socket and the SDK's heartbeats keep the process alive; this keeps it alive regardless.
  setInterval(() => {}, 1 << 30);
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  void main(process.argv.slice(2));
}
