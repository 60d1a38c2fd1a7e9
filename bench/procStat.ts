import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (100 on Linux almost everywhere). */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process in microseconds, from /proc/<pid>/stat; undefined when it is gone. */
export function cpuMicros(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may hold spaces; fields after the last ')' are fixed: state is field 3.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1_000_000) / CLK_TCK;
}

/**
 * Time the process's main thread spent runnable but waiting for a core, in microseconds, from
 * /proc/<pid>/schedstat (its second field, ns); undefined when it is gone or the kernel keeps no
 * such statistics. A node's event loop is that thread: while it waits, no notification leaves.
 */
export function runQueueWaitMicros(pid: number): number | undefined {
  try {
    const waitNs = Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]);
    return Number.isFinite(waitNs) ? waitNs / 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** Resident set size in bytes from /proc/<pid>/status. */
export function rssBytes(pid: number): number | undefined {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Sum of the CPU time (or another per-process counter in µs) of several processes (those gone count their last reading). */
export class CpuMeter {
  private readonly last = new Map<number, number>();

  constructor(
    private readonly pids: () => number[],
    private readonly readCounter: (pid: number) => number | undefined = cpuMicros,
  ) {}

  /** Total µs so far; a process that has exited keeps its last reading. */
  read(): number {
    this.refresh();
    let total = 0;
    for (const value of this.last.values()) total += value;
    return total;
  }

  /** µs so far of each process, by pid: which node of several did the work. */
  readEach(): Map<number, number> {
    this.refresh();
    return new Map(this.last);
  }

  private refresh(): void {
    for (const pid of this.pids()) {
      const now = this.readCounter(pid);
      if (now !== undefined) this.last.set(pid, now);
    }
  }
}

/** The pid of a local nats-server, when one runs on this machine (its CPU is reported apart). */
export function findNatsServerPid(): number | undefined {
  try {
    const out = execFileSync('pgrep', ['-x', 'nats-server'], { encoding: 'utf8' }).trim().split('\n')[0];
    return out ? Number(out) : undefined;
  } catch {
    return undefined;
  }
}

/** Microseconds on the system-wide monotonic clock: comparable between processes of one machine. */
export const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
