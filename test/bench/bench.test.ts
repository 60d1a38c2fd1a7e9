/**
 * A tiny run of the benchmark (bench/run.ts), so that it keeps working: the JSON it writes must
 * carry every summary field with a sane value. No figure is asserted against a target here; the
 * figures of a tiny run on a shared CI machine mean nothing.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { reachable } from '../../bench/reachable.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NATS = process.env.PRESENCE_BENCH_NATS ?? 'nats://127.0.0.1:4222';
const dir = mkdtempSync(join(tmpdir(), 'presence-bench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const hasNats = await reachable(NATS);

/** Runs `bench/run.ts` with tiny sizes; resolves with its output and the JSON it wrote. */
function runBench(args: string[]): Promise<{ code: number | null; output: string; json: Record<string, any> | undefined }> {
  const out = join(dir, `${args.join('_').replace(/[^a-z0-9_]/gi, '')}.json`);
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args, '--server', 'src', '--nats', NATS, '--out', out], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      let json: Record<string, any> | undefined;
      try {
        json = JSON.parse(readFileSync(out, 'utf8'));
      } catch {
        json = undefined;
      }
      resolve({ code, output, json });
    });
  });
}

const TINY = ['--users', '200', '--subs', '5', '--burst-seconds', '1', '--paced-seconds', '1', '--paced-rate', '500', '--raw-nats-seconds', '1'];

function expectSaneSummary(summary: Record<string, unknown>, mode: string): void {
  expect(summary.mode).toBe(mode);
  expect(summary.users).toBe(200);
  expect(summary.subs).toBe(5);
  for (const field of ['cpuUsPerNotification', 'pacedP99Ms', 'bytesPerOnlineUser', 'loginsPerSecond', 'notificationsPerSecond']) {
    const value = summary[field];
    expect(typeof value, field).toBe('number');
    expect(Number.isFinite(value as number), field).toBe(true);
    // Clustered nodes are not GC'd before a memory sample (a forced full GC could fence them), so
    // with 200 users their memory delta is noise and may come out below zero.
    if (field !== 'bytesPerOnlineUser' || mode === 'embedded') expect(value as number, field).toBeGreaterThanOrEqual(0);
  }
  expect(summary.loginsPerSecond as number).toBeGreaterThan(0);
  expect(summary.notificationsPerSecond as number).toBeGreaterThan(0);
  expect('rawNatsDeliveriesPerSecond' in summary).toBe(true);
  if (hasNats) {
    expect(typeof summary.rawNatsDeliveriesPerSecond).toBe('number');
    expect(summary.rawNatsDeliveriesPerSecond as number).toBeGreaterThan(0);
  }
}

describe('the benchmark, tiny', () => {
  it('runs embedded with N=200 S=5 and writes a sane summary', async () => {
    const { code, output, json } = await runBench(['--mode', 'embedded', ...TINY, '--rest-seconds', '1']);
    expect(code, output).toBe(0);
    expect(output).toContain('burst storm');
    expect(json, output).toBeDefined();
    expectSaneSummary(json!.summary, 'embedded');
    expect(json!.summary).not.toHaveProperty('failoverSeconds');
    expect(json!.phases.login.failed, output).toBe(0);
    // The warm-up's throwaway users (min(3000, N) by default) came and went before the storm.
    expect(json!.phases.warmUp, output).toMatchObject({ logins: 200, failed: 0 });
    expect(output).toContain('warm-up (cold node)');
    expect(json!.phases.drop.offlineSeen).toBe(json!.phases.drop.offlineExpected);
    // The node's event loop's wait for a core, read from the kernel's scheduler statistics.
    const waited = json!.phases.paced.serverRunQueueWaitMsPerSecond;
    expect(waited, output).toBeGreaterThanOrEqual(0);
    expect(waited, output).toBeLessThanOrEqual(1000);
    expect(output).toContain('ms/s for a core');
    // --rest-seconds: the memory read again once the node has been idle.
    const atRest = json!.phases.memory.atRest;
    expect(atRest, output).toMatchObject({ idleSeconds: 1 });
    expect(atRest.sample.rss).toBeGreaterThan(0);
    expect(Number.isFinite(atRest.rssBytesPerOnlineUser) && Number.isFinite(atRest.heapBytesPerOnlineUser)).toBe(true);
    expect(output).toContain('at rest, after 1 s idle');
  });

  it.skipIf(!hasNats)('runs on 3 nodes over NATS with a failover and loses no acknowledged write', async () => {
    const { code, output, json } = await runBench(['--mode', 'cluster', ...TINY, '--failover-writers', '30', '--warm-up-logins', '0']);
    expect(code, output).toBe(0);
    expect(json, output).toBeDefined();
    expectSaneSummary(json!.summary, 'cluster');
    expect(json!.phases).not.toHaveProperty('warmUp');
    expect(json!.summary.lostAcknowledgedWrites, output).toBe(0);
    const failover = json!.summary.failoverSeconds;
    expect(failover === null || (typeof failover === 'number' && failover >= 0)).toBe(true);
    // The burst's CPU split by node: one figure per node, adding up to the total.
    const burst = json!.phases.burst;
    expect(burst.serverCpuSecondsPerNode, output).toHaveLength(3);
    const sum = burst.serverCpuSecondsPerNode.reduce((a: number, b: number) => a + b, 0);
    expect(Math.abs(sum - burst.serverCpuSeconds)).toBeLessThan(0.01);
  });
});
