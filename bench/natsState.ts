/**
 * Removes one benchmark app's state from the NATS KV buckets after a cluster run. Runs share the
 * nats-server, and a user left with a pending deadline is listed in `pres_active`: the nodes of the
 * next run would restore every such actor of every earlier run when they take their shards, which
 * swamps JetStream and the start of that run. Only keys of the given sdkAppID are touched, and
 * their messages go with them, delete and purge markers included.
 *
 * Also usable by hand: `npx tsx bench/natsState.ts nats://127.0.0.1:4222 <sdkAppID> …`.
 */
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { fileURLToPath } from 'node:url';

/** Bucket → key filters holding one app's data (see docs/architecture.md, Buckets). */
const FILTERS = (app: number): Array<[string, string]> => [
  ['pres_active', `*.${app}.>`],
  ['pres_users', `${app}.>`],
  ['pres_friends', `${app}.>`],
  ['pres_apps', `${app}`],
];

export async function purgeApp(servers: string, sdkAppID: number): Promise<Record<string, number>> {
  const nc = await connect({ servers: servers.split(','), timeout: 5_000 });
  const purged: Record<string, number> = {};
  try {
    const jsm = await jetstreamManager(nc);
    for (const [bucket, filter] of FILTERS(sdkAppID)) {
      // A stream purge by subject, not a KV purge per key: that leaves a marker per key, and the
      // markers of earlier runs piled up (330 000 per bucket here) until listing `pres_active` at a
      // takeover took seconds, and failover got 2 s slower.
      try {
        purged[bucket] = (await jsm.streams.purge(`KV_${bucket}`, { filter: `$KV.${bucket}.${filter}` })).purged;
      } catch (error) {
        if (!(error instanceof Error && /stream not found/i.test(error.message))) throw error;
      }
    }
  } finally {
    await nc.close();
  }
  return purged;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [servers, ...apps] = process.argv.slice(2);
  if (!servers || !apps.length) {
    process.stderr.write('usage: tsx bench/natsState.ts <nats-url> <sdkAppID> …\n');
    process.exit(2);
  }
  for (const app of apps) process.stdout.write(`${app}: ${JSON.stringify(await purgeApp(servers, Number(app)))}\n`);
}
