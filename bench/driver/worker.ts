/**
 * One driver process of the benchmark (forked by bench/run.ts): it holds the lean sockets of its
 * share of the users (user i belongs to driver i mod K and connects to node i mod nodes), runs the
 * storms on command over the IPC channel and reports counts, latency histograms and its timings.
 * Times are µs of the system-wide monotonic clock, so they compare across processes.
 */
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import { genUserSig } from '../../src/auth/index.js';
import type { UserStatus } from '../../src/actors/types.js';
import { friendsOf, subscriptionTargets, userID, userIndex, type Workload } from '../graph.js';
import { nowUs } from '../procStat.js';
import { Histogram, type HistogramData } from '../stats.js';
import { CallTally } from './callTally.js';
import { LeanSocket, type Answer } from './leanSocket.js';

export interface DriverInit {
  driverIndex: number;
  drivers: number;
  workload: Workload;
  sdkAppID: number;
  secretKey: string;
  urls: string[];
}

interface Request {
  id: number;
  cmd: string;
  args?: Record<string, unknown>;
}

const OFFLINE = 2;
const REQUEST_TIMEOUT_MS = 20_000;

let init: DriverInit | undefined;
const sockets = new Map<number, LeanSocket>();
let mine: number[] = [];

// Counters read by the coordinator before and after each phase.
const counters = { notifications: 0, selfPushes: 0, pushFrames: 0, closedByServer: 0, lastNotifyUs: 0 };
/** Notification latency (send time carried in the custom status → receipt), per tag. */
const latency = new Map<string, Histogram>();

// The drop storm's bookkeeping: which (watcher, target) OFFLINE pairs are awaited.
let drop: { t0: number; dropped: (i: number) => boolean; seen: Set<number>; hist: Histogram; lastUs: number; expected: number; done?: () => void } | undefined;

const events = {
  onPush(socket: LeanSocket, list: UserStatus[]) {
    counters.pushFrames++;
    const now = nowUs();
    for (const status of list) {
      if (status.userID === socket.userID) {
        counters.selfPushes++;
        continue;
      }
      counters.notifications++;
      counters.lastNotifyUs = now;
      const cs = status.customStatus;
      if (cs && cs.charCodeAt(1) === 58 /* ':' */) {
        const sent = Number(cs.slice(2));
        if (sent > 0) {
          const tag = cs[0]!;
          histogramFor(tag).record(now - sent);
          timelineFor(tag).add(now, now - sent);
        }
      }
      if (drop && status.statusType === OFFLINE) {
        const target = userIndex(status.userID);
        if (drop.dropped(target)) {
          const key = socket.index * init!.workload.users + target;
          if (!drop.seen.has(key)) {
            drop.seen.add(key);
            drop.hist.record(now - drop.t0);
            drop.lastUs = now;
            if (drop.seen.size >= drop.expected) drop.done?.();
          }
        }
      }
    }
  },
  onClose() {
    counters.closedByServer++;
  },
};

/** Per second of receipt: notifications and their worst latency, to see stalls in time. */
class Timeline {
  readonly seconds = new Map<number, [number, number]>();
  add(nowUs: number, latencyUs: number): void {
    const second = Math.floor(nowUs / 1e6);
    const entry = this.seconds.get(second);
    if (entry) {
      entry[0]++;
      if (latencyUs > entry[1]) entry[1] = latencyUs;
    } else this.seconds.set(second, [1, latencyUs]);
  }
}
const timelines = new Map<string, Timeline>();

function timelineFor(tag: string): Timeline {
  let t = timelines.get(tag);
  if (!t) timelines.set(tag, (t = new Timeline()));
  return t;
}

function histogramFor(tag: string): Histogram {
  let h = latency.get(tag);
  if (!h) latency.set(tag, (h = new Histogram()));
  return h;
}

/** Runs `work` over `items` with at most `concurrency` at once. */
async function pool<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(lanes);
}

/** The warm-up's sockets, while their requests are in flight: the sweeper expires theirs too. */
const warming = new Set<LeanSocket>();

const sweeper = setInterval(() => {
  const now = Date.now();
  for (const socket of sockets.values()) if (socket.pendingCount) socket.expire(now, REQUEST_TIMEOUT_MS);
  for (const socket of warming) if (socket.pendingCount) socket.expire(now, REQUEST_TIMEOUT_MS);
}, 1_000);
sweeper.unref();

function errorText(answer: Answer): string {
  return `${answer.error?.code} ${answer.error?.desc}`;
}

/**
 * Connects `socket` and logs it in as its user, counting the connect and login in `tally`.
 * `hold` keeps the socket where the sweeper finds it before its login is sent. Undefined when
 * it never connected.
 */
async function connectAndLogIn(socket: LeanSocket, url: string, login: { userSig: string; deviceId: string }, tally: CallTally, hold: () => void): Promise<Answer | undefined> {
  const { sdkAppID } = init!;
  const t0 = nowUs();
  try {
    await socket.connect(url);
  } catch (error) {
    tally.failedWith((error as Error).message);
    return undefined;
  }
  hold();
  const answer = await socket.request('login', { sdkAppID, userID: socket.userID, ...login, platform: 'linux' });
  if (answer.ok) tally.succeeded(t0);
  else tally.failedWith(errorText(answer));
  return answer;
}

const handlers: Record<string, (args: Record<string, unknown>) => Promise<unknown>> = {
  async init(args) {
    init = args as unknown as DriverInit;
    mine = [];
    for (let i = init.driverIndex; i < init.workload.users; i += init.drivers) mine.push(i);
    return { users: mine.length };
  },

  /** Connects and logs in every user of this driver. */
  async login(args) {
    const { sdkAppID, secretKey, urls } = init!;
    const concurrency = Number(args.concurrency ?? 200);
    // UserSigs are made before the clock starts: the storm measures the service, not HMACs here.
    const sigs = new Map(mine.map((i) => [i, genUserSig({ sdkAppID, secretKey, userID: userID(i), expire: 86_400 })]));
    const tally = new CallTally();
    await pool(mine, concurrency, async (i) => {
      const socket = new LeanSocket(i, userID(i), events);
      await connectAndLogIn(socket, urls[i % urls.length]!, { userSig: sigs.get(i)!, deviceId: `bench-${i}` }, tally, () => sockets.set(i, socket));
    });
    return tally.result();
  },

  /**
   * Throwaway devices of this driver's share of `count` connect, log in, log out and close, so
   * that the node and this driver have run the login path before the storm is timed. Their
   * userIDs (`warm-<k>`) are not the workload's: the storm's users are all new to the node.
   */
  async warmUp(args) {
    const { sdkAppID, secretKey, urls, driverIndex, drivers } = init!;
    const count = Number(args.count);
    const concurrency = Number(args.concurrency ?? 200);
    const ids: number[] = [];
    for (let k = driverIndex; k < count; k += drivers) ids.push(k);
    const sigs = new Map(ids.map((k) => [k, genUserSig({ sdkAppID, secretKey, userID: `warm-${k}`, expire: 86_400 })]));
    const tally = new CallTally();
    await pool(ids, concurrency, async (k) => {
      const socket = new LeanSocket(-1 - k, `warm-${k}`, events);
      const answer = await connectAndLogIn(socket, urls[k % urls.length]!, { userSig: sigs.get(k)!, deviceId: `warm-${k}` }, tally, () => warming.add(socket));
      if (answer?.ok) {
        const out = await socket.request('logout', {});
        if (!out.ok) tally.failedWith(`logout: ${errorText(out)}`);
      }
      warming.delete(socket);
      socket.close();
    });
    return tally.result();
  },

  /** Subscribes every user of this driver to its S targets (friends come from the admin API). */
  async subscribe(args) {
    const concurrency = Number(args.concurrency ?? 200);
    const perCall = Number(args.maxPerCall ?? 100);
    const tally = new CallTally();
    await pool(mine, concurrency, async (i) => {
      const socket = sockets.get(i);
      const targets = subscriptionTargets(init!.workload, i).map(userID);
      for (let from = 0; from < targets.length; from += perCall) {
        const t0 = nowUs();
        const answer = socket ? await socket.request('subscribeUserStatus', { userIDList: targets.slice(from, from + perCall) }) : undefined;
        if (answer?.ok) tally.succeeded(t0);
        else tally.failedWith(answer ? errorText(answer) : 'no socket');
      }
    });
    return tally.result();
  },

  async counters() {
    let open = 0;
    for (const socket of sockets.values()) if (socket.open) open++;
    return { ...counters, open };
  },

  async latency(args) {
    const tag = String(args.tag);
    const data = { ...histogramFor(tag).toJSON(), timeline: [...timelineFor(tag).seconds] };
    if (args.reset) {
      latency.delete(tag);
      timelines.delete(tag);
    }
    return data;
  },

  /** As many custom-status changes as `window` requests in flight allow, for `durationMs`. */
  async burst(args) {
    return storm({ tag: 'b', durationMs: Number(args.durationMs), window: Number(args.window) });
  },

  /** `changesPerSec` custom-status changes per second, for `durationMs`. */
  async paced(args) {
    return storm({ tag: 'p', durationMs: Number(args.durationMs), window: 1 << 30, ratePerSec: Number(args.changesPerSec) });
  },

  /** Destroys the sockets of the users with `i mod 2 == parity`, then waits for every OFFLINE. */
  async drop(args) {
    const w = init!.workload;
    const parity = Number(args.parity ?? 0);
    const dropped = (i: number) => i % 2 === parity;
    let expected = 0;
    for (const i of mine) {
      if (dropped(i) || !sockets.get(i)?.open) continue;
      for (const t of [...subscriptionTargets(w, i), ...friendsOf(w, i)]) if (dropped(t)) expected++;
    }
    const t0 = nowUs();
    drop = { t0, dropped, seen: new Set(), hist: new Histogram(), lastUs: t0, expected };
    let terminated = 0;
    for (const i of mine) {
      if (!dropped(i)) continue;
      const socket = sockets.get(i);
      if (socket?.open) {
        socket.open = false;
        socket.terminate();
        terminated++;
      }
    }
    const timeoutMs = Number(args.timeoutMs ?? 60_000);
    const d = drop;
    if (d.seen.size < expected) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        d.done = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    drop = undefined;
    return { terminated, expected, seen: d.seen.size, t0Us: d.t0, lastUs: d.lastUs, hist: d.hist.toJSON() };
  },

  async writersStart(args) {
    writers = startWriters((args.users as number[]).filter((i) => sockets.get(i)?.open), Number(args.intervalMs));
    return { writers: writers.count };
  },

  async writersStop() {
    const w = writers;
    writers = undefined;
    return w ? w.stop() : { records: [] };
  },

  async natsSub(args) {
    natsSub = { nc: await natsConnect({ servers: String(args.servers) }), count: 0, firstUs: 0, lastUs: 0 };
    const s = natsSub;
    s.nc.subscribe(String(args.subject), {
      callback: () => {
        const now = nowUs();
        if (s.count++ === 0) s.firstUs = now;
        s.lastUs = now;
      },
    });
    await s.nc.flush();
    return { ready: true };
  },

  async natsSubStop() {
    const s = natsSub!;
    await s.nc.close();
    natsSub = undefined;
    return { count: s.count, firstUs: s.firstUs, lastUs: s.lastUs };
  },

  async natsPub(args) {
    const nc = await natsConnect({ servers: String(args.servers) });
    const payload = new Uint8Array(Number(args.size)).fill(97);
    const subject = String(args.subject);
    const end = nowUs() + Number(args.durationMs) * 1000;
    let published = 0;
    const startUs = nowUs();
    // Batches of 5000 with one flush in flight: the server and the subscriber stay busy, and the
    // publisher never runs more than two batches ahead of what the server has taken.
    let previous: Promise<void> = Promise.resolve();
    while (nowUs() < end) {
      for (let k = 0; k < 5000; k++) nc.publish(subject, payload);
      published += 5000;
      await previous;
      previous = nc.flush();
    }
    await previous;
    const endUs = nowUs();
    await nc.close();
    return { published, startUs, endUs };
  },

  async close() {
    for (const socket of sockets.values()) socket.close();
    setTimeout(() => process.exit(0), 200);
    return { closed: sockets.size };
  },
};

let natsSub: { nc: NatsConnection; count: number; firstUs: number; lastUs: number } | undefined;

/** Round-robin custom-status changes over this driver's open sockets, one in flight per socket. */
async function storm(opts: { tag: string; durationMs: number; window: number; ratePerSec?: number }) {
  const users = mine.filter((i) => sockets.get(i)?.open).map((i) => sockets.get(i)!);
  const tally = new CallTally();
  let sent = 0;
  let skipped = 0;
  let inflight = 0;
  let cursor = 0;
  let lastAckUs = 0;
  const { startUs } = tally;
  const endUs = startUs + opts.durationMs * 1000;
  const outcome = (stopUs: number) => ({ sent, acked: tally.ok, failed: tally.failed, skipped, startUs, stopUs, lastAckUs, errors: tally.errors, ack: tally.hist.toJSON() });
  if (!users.length) {
    lastAckUs = startUs;
    return outcome(startUs);
  }
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let stopped = false;

  const sendOne = (): boolean => {
    for (let tries = 0; tries < users.length; tries++) {
      const socket = users[cursor]!;
      cursor = (cursor + 1) % users.length;
      if (socket.busy || !socket.open) continue;
      socket.busy = true;
      inflight++;
      sent++;
      const t0 = nowUs();
      socket.request('setSelfStatus', { customStatus: `${opts.tag}:${t0}` }).then((answer) => {
        socket.busy = false;
        inflight--;
        const now = nowUs();
        if (answer.ok) {
          tally.succeeded(t0, now);
          lastAckUs = now;
        } else tally.failedWith(errorText(answer));
        if (opts.ratePerSec === undefined && !stopped) pump();
        if (stopped && inflight === 0) finish();
      });
      return true;
    }
    return false;
  };

  const pump = () => {
    if (nowUs() >= endUs) return stop();
    while (inflight < opts.window) if (!sendOne()) break;
  };

  const stop = () => {
    if (stopped) return;
    stopped = true;
    if (inflight === 0) finish();
  };

  if (opts.ratePerSec === undefined) {
    pump();
    const timer = setInterval(() => {
      if (nowUs() >= endUs) {
        clearInterval(timer);
        stop();
      } else pump();
    }, 50);
  } else {
    const rate = opts.ratePerSec;
    const tick = () => {
      const now = nowUs();
      if (now >= endUs) return stop();
      const due = Math.floor(((now - startUs) / 1e6) * rate);
      while (sent + skipped < due) if (!sendOne()) skipped++;
      setTimeout(tick, 1);
    };
    tick();
  }
  await finished;
  return outcome(nowUs());
}

/** One write of a failover writer, as the failover phase reads it back. */
export interface WriteRecord {
  user: number;
  value: string;
  sentUs: number;
  doneUs: number;
  ok: boolean;
  code?: number;
}

let writers: { count: number; stop(): Promise<{ records: WriteRecord[] }> } | undefined;

/** Each writer sets its custom status every `intervalMs` (staggered), one write in flight at a time. */
function startWriters(users: number[], intervalMs: number) {
  const records: WriteRecord[] = [];
  const inflight = new Set<Promise<void>>();
  const timers: NodeJS.Timeout[] = [];
  let stopped = false;
  users.forEach((i, n) => {
    const socket = sockets.get(i)!;
    let busy = false;
    const write = () => {
      if (stopped || busy || !socket.open) return;
      busy = true;
      const sentUs = nowUs();
      const value = `w:${sentUs}`;
      const p = socket.request('setSelfStatus', { customStatus: value }).then((answer) => {
        busy = false;
        records.push({ user: i, value, sentUs, doneUs: nowUs(), ok: answer.ok, ...(answer.ok ? {} : { code: answer.error?.code }) });
      });
      inflight.add(p);
      void p.then(() => inflight.delete(p));
    };
    const start = setTimeout(() => {
      write();
      timers.push(setInterval(write, intervalMs));
    }, (n * intervalMs) / users.length);
    timers.push(start);
  });
  return {
    count: users.length,
    async stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      await Promise.all([...inflight]);
      return { records };
    },
  };
}

process.on('message', (message: Request) => {
  const handler = handlers[message.cmd];
  if (!handler) {
    process.send!({ id: message.id, ok: false, error: `unknown command ${message.cmd}` });
    return;
  }
  handler(message.args ?? {}).then(
    (result) => process.send!({ id: message.id, ok: true, result }),
    (error: unknown) => process.send!({ id: message.id, ok: false, error: error instanceof Error ? error.stack ?? error.message : String(error) }),
  );
});
process.on('disconnect', () => process.exit(0));
