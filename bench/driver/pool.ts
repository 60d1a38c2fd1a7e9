/** The coordinator's side of the driver processes: fork, call a command on one or all, stop. */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export class Driver {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();

  constructor(readonly index: number, readonly child: ChildProcess) {
    child.on('message', (reply: Reply) => {
      const w = this.waiting.get(reply.id);
      if (!w) return;
      this.waiting.delete(reply.id);
      if (reply.ok) w.resolve(reply.result);
      else w.reject(new Error(`driver ${index}: ${reply.error}`));
    });
    child.once('exit', (code, signal) => {
      for (const w of this.waiting.values()) w.reject(new Error(`driver ${index} exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  call<T = any>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, cmd, args });
    });
  }
}

/**
 * How the drivers are scheduled. `batch`: Linux's SCHED_BATCH, under which a driver woken by a
 * node's write does not preempt the node on its core; it runs when a core is free.
 */
export type DriverSched = 'normal' | 'batch';

export class DriverPool {
  private constructor(readonly drivers: Driver[]) {}

  /** Forks `count` driver processes (TypeScript through tsx; its cost is at load time only). */
  static start(count: number, sched: DriverSched = 'normal'): DriverPool {
    // PRESENCE_BENCH_DRIVER_ARGS adds flags to the drivers, as PRESENCE_BENCH_NODE_ARGS does to the nodes.
    const extra = (process.env.PRESENCE_BENCH_DRIVER_ARGS ?? '').split(' ').filter(Boolean);
    const nodeArgs = ['--import', 'tsx', '--max-old-space-size=4096', ...extra];
    const drivers = Array.from({ length: count }, (_, index) => {
      const child = fork(WORKER, [], {
        cwd: ROOT,
        // util-linux's chrt execs node under SCHED_BATCH, so every thread of the driver has it.
        ...(sched === 'batch' ? { execPath: 'chrt', execArgv: ['--batch', '0', process.execPath, ...nodeArgs] } : { execArgv: nodeArgs }),
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      return new Driver(index, child);
    });
    return new DriverPool(drivers);
  }

  get pids(): number[] {
    return this.drivers.map((d) => d.pid);
  }

  /** The same command on every driver (args may depend on the driver), all results in order. */
  all<T = any>(cmd: string, args: Record<string, unknown> | ((d: Driver) => Record<string, unknown>) = {}): Promise<T[]> {
    return Promise.all(this.drivers.map((d) => d.call<T>(cmd, typeof args === 'function' ? args(d) : args)));
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.drivers.map(async (d) => {
        if (d.child.exitCode !== null || d.child.signalCode !== null) return;
        const exited = new Promise((resolve) => d.child.once('exit', resolve));
        d.call('close').catch(() => undefined);
        const timer = setTimeout(() => d.child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}
