/**
 * The limit: raw NATS publish → subscribe deliveries per second through nats.js, one publisher
 * process and one subscriber process on the same nats-server, with the payload size of one push.
 */
import { randomBytes } from 'node:crypto';
import { Packr } from 'msgpackr';
import { DriverPool } from '../driver/pool.js';
import { nowUs } from '../procStat.js';
import { round, type Ctx } from './context.js';

export interface RawNatsPhase {
  servers: string;
  payloadBytes: number;
  published: number;
  delivered: number;
  deliveriesPerSecond: number | null;
  publisherCpuSeconds: number | null;
  error?: string;
}

/** The bytes of one push frame carrying one status change of the benchmark. */
export function pushPayloadBytes(users: number): number {
  const packr = new Packr({ useRecords: false });
  const status = { userID: `u${users - 1}`, statusType: 1, customStatus: `b:${nowUs()}`, version: 1234, lastSeenAt: 0 };
  return packr.pack({ t: 'push', list: [status] }).length;
}

export async function rawNats(ctx: Ctx): Promise<RawNatsPhase> {
  const size = pushPayloadBytes(ctx.opts.workload.users);
  const seconds = ctx.opts.rawNatsSeconds;
  const servers = ctx.opts.nats;
  ctx.log(`raw NATS: ${size}-byte messages published for ${seconds} s through nats.js to one subscriber process on ${servers} …`);
  const pool = DriverPool.start(2);
  const [sub, pub] = pool.drivers as [(typeof pool.drivers)[0], (typeof pool.drivers)[0]];
  const subject = `bench.raw.${randomBytes(6).toString('hex')}`;
  try {
    await sub.call('natsSub', { servers, subject });
    const published = await pub.call<{ published: number; startUs: number; endUs: number }>('natsPub', { servers, subject, size, durationMs: seconds * 1000 });
    await new Promise((r) => setTimeout(r, 500));
    const got = await sub.call<{ count: number; firstUs: number; lastUs: number }>('natsSubStop');
    const span = (got.lastUs - got.firstUs) / 1e6;
    const phase: RawNatsPhase = {
      servers,
      payloadBytes: size,
      published: published.published,
      delivered: got.count,
      deliveriesPerSecond: span > 0 ? round(got.count / span) : null,
      publisherCpuSeconds: null,
    };
    ctx.log(`  ${phase.delivered} of ${phase.published} delivered: ${phase.deliveriesPerSecond} deliveries/s`);
    return phase;
  } catch (error) {
    const message = (error as Error).message.split('\n')[0]!;
    ctx.log(`  raw NATS baseline failed: ${message}`);
    return { servers, payloadBytes: size, published: 0, delivered: 0, deliveriesPerSecond: null, publisherCpuSeconds: null, error: message };
  } finally {
    await pool.stop();
  }
}
