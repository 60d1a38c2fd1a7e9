/**
 * Failover (3-node mode): writers on the surviving nodes keep changing their custom status while
 * one node is SIGKILLed. Measured: time until the cluster view shows all shards on the survivors,
 * time until every writer whose shard the dead node owned has a write acknowledged again, the
 * requests that failed meanwhile, and acknowledged writes lost (the final status must be the last
 * acknowledged value, or a later one whose answer never came).
 */
import { shardOf } from '../../src/cluster/shards.js';
import type { WriteRecord } from '../driver/worker.js';
import { userID } from '../graph.js';
import { nowUs } from '../procStat.js';
import { expandRanges } from '../../src/cluster/shardRanges.js';
import { waitBalanced, type ClusterView } from '../servers.js';
import { meter, round, sleep, type Ctx, type PhaseCost } from './context.js';

export interface FailoverPhase extends PhaseCost {
  /** Whether the 3 nodes shared all shards when the kill came (the storms may have unbalanced them). */
  balancedBeforeKill: boolean;
  killedNode: string;
  killedNodeShards: number;
  writers: number;
  writersOnKilledShards: number;
  /** Of those, how many had a write acknowledged after the kill before the phase ended. */
  writersOnKilledShardsServedAgain: number;
  writes: number;
  failedRequests: number;
  failedCodes: Record<string, number>;
  /** SIGKILL → the survivors hold all 1024 shard claims; null when not within 90 s. */
  shardsReownedSeconds: number | null;
  /**
   * SIGKILL → every writer on a dead node's shard has had a write sent after the kill acknowledged,
   * leaving out the devices that still waited for a call in flight at the kill.
   */
  servedAgainSeconds: number | null;
  /** The same over every writer of the dead node's shards, those waiting on an in-flight call too. */
  servedAgainIncludingStuckSeconds: number | null;
  /** Calls that were sent before the kill and answered after it. */
  callsInFlightAtKill: number;
  callsInFlightAtKillFailed: number;
  callsInFlightAtKillMaxWaitSeconds: number;
  failoverSeconds: number | null;
  lostAcknowledgedWrites: number;
  checkedUsers: number;
  /** Sockets that were on the killed node (their devices were not moved elsewhere). */
  socketsOnKilledNode: number;
}

export async function failover(ctx: Ctx): Promise<FailoverPhase> {
  const [a, b, victim] = ctx.nodes as [(typeof ctx.nodes)[0], (typeof ctx.nodes)[0], (typeof ctx.nodes)[0]];
  const k = ctx.drivers.drivers.length;
  const nodes = ctx.nodes.length;
  // The storms may have moved shards (a node that missed its own heartbeats fences itself and
  // drops them): start from a balanced cluster, and say so when it does not get there.
  let balancedBeforeKill = true;
  try {
    await waitBalanced(a, ctx.nodes.map((n) => n.nodeId), 60_000);
  } catch (error) {
    balancedBeforeKill = false;
    ctx.log(`  ${(error as Error).message.slice(0, 300)}`);
  }
  const view = (await a.admin.cluster()) as unknown as ClusterView;
  const killedShards = new Set(expandRanges(view.nodes.find((n) => n.nodeId === victim.nodeId)?.ownedShards));
  // Writers: users still online (odd) whose socket is on a survivor; half on the victim's shards.
  const wanted = ctx.opts.failoverWriters;
  const onVictim: number[] = [];
  const elsewhere: number[] = [];
  for (let i = 1; i < ctx.opts.workload.users && (onVictim.length < wanted / 2 || elsewhere.length < wanted / 2); i += 2) {
    if (i % nodes === 2) continue;
    const list = killedShards.has(shardOf(ctx.sdkAppID, userID(i))) ? onVictim : elsewhere;
    if (list.length < wanted / 2) list.push(i);
  }
  const writers = [...onVictim, ...elsewhere];
  const intervalMs = 250;
  ctx.log(
    `failover: ${writers.length} writers (${onVictim.length} on the ${killedShards.size} shards of ${victim.nodeId}) write every ${intervalMs} ms; SIGKILL ${victim.nodeId} …`,
  );
  await ctx.drivers.all('writersStart', (d) => ({ users: writers.filter((i) => i % k === d.index), intervalMs }));
  await sleep(2_000);
  const m = meter(ctx);
  const killUs = nowUs();
  await victim.kill('SIGKILL');
  let reownedUs: number | undefined;
  try {
    await waitBalanced(a, [a.nodeId, b.nodeId], 90_000, 100);
    reownedUs = nowUs();
    ctx.log(`  shards re-owned by the survivors ${round((reownedUs - killUs) / 1e6, 2)} s after the kill`);
  } catch (error) {
    ctx.log(`  ${(error as Error).message.slice(0, 300)}`);
  }
  // Keep writing past the router's 15 s answer timeout, so the calls that were in flight to the
  // victim when it died have ended (answered or failed) and their devices wrote again.
  await sleep(Math.max(3_000, 18_000 - (nowUs() - killUs) / 1000));
  const { records } = (await ctx.drivers.all<{ records: WriteRecord[] }>('writersStop')).reduce((acc, r) => ({ records: acc.records.concat(r.records) }), {
    records: [] as WriteRecord[],
  });
  const cost = m.stop();

  const failed = records.filter((r) => !r.ok);
  const failedCodes: Record<string, number> = {};
  for (const r of failed) failedCodes[String(r.code)] = (failedCodes[String(r.code)] ?? 0) + 1;
  // A device's calls run one after another (the gateway queues them per connection), so a device
  // whose call was in flight to the victim at the kill waits for that call's answer first.
  const inFlight = records.filter((r) => r.sentUs < killUs && r.doneUs > killUs);
  const stuck = new Set(inFlight.map((r) => r.user));
  let servedAgain = 0;
  let servedAgainFresh = 0;
  let unserved = 0;
  for (const i of onVictim) {
    const first = records.filter((r) => r.user === i && r.ok && r.sentUs > killUs).sort((x, y) => x.doneUs - y.doneUs)[0];
    if (!first) {
      unserved++;
      continue;
    }
    servedAgain = Math.max(servedAgain, first.doneUs - killUs);
    if (!stuck.has(i)) servedAgainFresh = Math.max(servedAgainFresh, first.doneUs - killUs);
  }
  // Lost acknowledged writes, read back through a survivor's admin API.
  let lost = 0;
  let checked = 0;
  for (let from = 0; from < writers.length; from += 500) {
    const batch = writers.slice(from, from + 500);
    const statuses = await a.admin.status(ctx.sdkAppID, batch.map(userID));
    for (const status of statuses) {
      const mine = records.filter((r) => r.user === Number(status.userID.slice(1))).sort((x, y) => x.sentUs - y.sentUs);
      const lastOk = mine.map((r) => r.ok).lastIndexOf(true);
      if (lastOk < 0) continue;
      checked++;
      const allowed = new Set(mine.slice(lastOk).map((r) => r.value));
      if (!allowed.has(status.customStatus)) lost++;
    }
  }
  const counts = await ctx.drivers.all<{ closedByServer: number }>('counters');
  const reowned = reownedUs === undefined ? null : round((reownedUs - killUs) / 1e6, 3);
  const measurable = onVictim.length > 0 && unserved === 0;
  const served = measurable ? round(servedAgain / 1e6, 3) : null;
  const servedFresh = measurable ? round(servedAgainFresh / 1e6, 3) : null;
  const phase: FailoverPhase = {
    ...cost,
    balancedBeforeKill,
    killedNode: victim.nodeId,
    killedNodeShards: killedShards.size,
    writers: writers.length,
    writersOnKilledShards: onVictim.length,
    writersOnKilledShardsServedAgain: onVictim.length - unserved,
    writes: records.length,
    failedRequests: failed.length,
    failedCodes,
    shardsReownedSeconds: reowned,
    servedAgainSeconds: servedFresh,
    servedAgainIncludingStuckSeconds: served,
    callsInFlightAtKill: inFlight.length,
    callsInFlightAtKillFailed: inFlight.filter((r) => !r.ok).length,
    callsInFlightAtKillMaxWaitSeconds: inFlight.length ? round(Math.max(...inFlight.map((r) => r.doneUs - killUs)) / 1e6, 3) : 0,
    failoverSeconds: reowned === null || servedFresh === null ? null : Math.max(reowned, servedFresh),
    lostAcknowledgedWrites: lost,
    checkedUsers: checked,
    socketsOnKilledNode: counts.reduce((x, c) => x + c.closedByServer, 0),
  };
  ctx.log(
    `  served again after ${phase.servedAgainSeconds ?? `— (${unserved} writers never served)`} s (${served ?? '—'} s counting devices stuck behind a call in flight at the kill: ` +
      `${inFlight.length} such calls, ${phase.callsInFlightAtKillFailed} failed, the last answered after ${phase.callsInFlightAtKillMaxWaitSeconds} s); ${phase.failedRequests} of ${phase.writes} writes failed; ` +
      `${phase.lostAcknowledgedWrites} acknowledged writes lost (${checked} users checked)`,
  );
  return phase;
}
