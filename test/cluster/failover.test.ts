import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { PresenceClient, UserStatusType, type UserStatus } from '../../src/client/index.js';
import { shardOf } from '../../src/cluster/shards.js';
import { BUCKETS, userKey } from '../../src/cluster/subjects.js';
import { expandRanges } from '../../src/cluster/shardRanges.js';
import { AdminClient } from '../support/admin.js';
import { TestDevice } from '../support/clients.js';
import { isBalanced, startClusterDeployment, type ClusterDeployment, type ClusterView, type TestApp } from '../support/deployment.js';
import type { NodeProcess } from '../support/nodeProcess.js';
import { WebhookReceiver } from '../support/webhookReceiver.js';

/**
 * What users see when a presence node or NATS fails: 3 node processes on a 3-server
 * JetStream cluster, clients spread over the nodes with the list of all node URLs (so a
 * client whose node dies reconnects to the next), every user subscribed to three others.
 * Each test leaves the cluster whole and balanced for the next.
 */

/** Stated bound: the shards of a dead node are served again within this (lease 3 s + claim + restore). */
const FAILOVER_BOUND_MS = 15_000;
/** Calls may wait out a failover or a JetStream leader election; they must not fail. */
const CALL_TIMEOUT_MS = 30_000;
const USERS = 9;

let deployment: ClusterDeployment;
let app: TestApp;
let members: Member[] = [];
const extraClients: PresenceClient[] = [];

/** One user with one device, and what its churn loop asked for and got acknowledged. */
interface Member {
  userID: string;
  device: TestDevice;
  watches: string[];
  /** The latest custom status the service acknowledged. */
  acked: string;
  /** Custom statuses sent since that acknowledgement whose outcome the client does not know. */
  unsure: string[];
  failures: string[];
}

beforeAll(async () => {
  deployment = await startClusterDeployment();
  app = await deployment.newApp({ friendStatusAutoNotify: false });
  members = await Promise.all(Array.from({ length: USERS }, (_, i) => join(`fo-user-${i}`, i)));
  // Everyone watches three others, so watchers and watched users sit on different nodes.
  for (const [i, member] of members.entries()) {
    member.watches = [1, 2, 4].map((d) => members[(i + d) % USERS]!.userID);
    await member.device.client.subscribeUserStatus(member.watches);
  }
}, 240_000);

afterAll(async () => {
  for (const node of deployment?.nodes ?? []) if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill('SIGCONT');
  for (const member of members) member.device.client.close();
  for (const client of extraClients) client.close();
  await deployment?.stop();
});

async function join(userID: string, node: number): Promise<Member> {
  const client = new PresenceClient({
    url: deployment.urls(node),
    sdkAppID: app.sdkAppID,
    requestTimeoutMs: CALL_TIMEOUT_MS,
    reconnect: { initialDelayMs: 50, maxDelayMs: 1_000 },
  });
  const device = new TestDevice(client, userID);
  await client.login(userID, app.sig(userID));
  await client.setSelfStatus({ customStatus: `${userID} joined` });
  return { userID, device, watches: [], acked: `${userID} joined`, unsure: [], failures: [] };
}

/** A fresh client on node `i` only, to read what that node answers. */
async function observer(i: number): Promise<PresenceClient> {
  const userID = `fo-observer-${extraClients.length}`;
  const client = new PresenceClient({ url: deployment.urls(i)[0]!, sdkAppID: app.sdkAppID, requestTimeoutMs: CALL_TIMEOUT_MS });
  extraClients.push(client);
  await client.login(userID, app.sig(userID));
  return client;
}

/**
 * Every member sets a new custom status every `pauseMs` until stopped, remembering what
 * was acknowledged: the load under which the failures happen.
 */
function churn(tag: string, pauseMs = 150): { stop(): Promise<{ calls: number; failed: string[]; slowest: string[] }> } {
  let running = true;
  let calls = 0;
  /** The slowest acknowledged calls: a near miss (a call that waited out most of its timeout) shows where a failure would come from. */
  const slow: Array<{ ms: number; what: string }> = [];
  const loops = members.map(async (member) => {
    for (let n = 0; running; n++) {
      const value = `${member.userID} ${tag} ${n}`;
      member.unsure.push(value);
      calls++;
      const sentAt = Date.now();
      try {
        await member.device.client.setSelfStatus({ customStatus: value });
        member.acked = value;
        member.unsure = [];
        const ms = Date.now() - sentAt;
        if (ms >= 1_000) slow.push({ ms, what: `${value} (shard ${shardOf(app.sdkAppID, member.userID)}): ${ms} ms from ${new Date(sentAt).toISOString()} (${sentAt})` });
      } catch (error) {
        // When and how long: a failure can then be matched with the node logs (their `time`).
        const when = `sent ${new Date(sentAt).toISOString()} (${sentAt}), failed after ${Date.now() - sentAt} ms`;
        member.failures.push(`${value}: ${(error as Error).message} [shard ${shardOf(app.sdkAppID, member.userID)}; ${when}; ${member.device.states.slice(-6).join('>')}]`);
      }
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      const slowest = slow.sort((a, b) => b.ms - a.ms).slice(0, 5).map((s) => s.what);
      return { calls, failed: members.flatMap((m) => m.failures.splice(0)), slowest };
    },
  };
}

/** The custom status a member has now is its last acknowledged one, or one sent after it. */
function expectNothingLost(statuses: UserStatus[]): void {
  for (const member of members) {
    const status = statuses.find((s) => s.userID === member.userID);
    expect(status?.statusType, member.userID).toBe(UserStatusType.ONLINE);
    expect([member.acked, ...member.unsure], member.userID).toContain(status?.customStatus);
  }
}

/** No watcher was ever told that a member went OFFLINE or UNLOGINED. */
function expectNobodyFlipped(): void {
  for (const member of members) {
    const flips = member.device.received.filter((s) => s.statusType !== UserStatusType.ONLINE);
    expect(flips, `pushes to ${member.userID}`).toEqual([]);
  }
}

/** Changes every member's status once more and waits until each of its watchers hears it. */
async function expectSubscriptionsIntact(tag: string): Promise<void> {
  for (const member of members) {
    const value = `${member.userID} ${tag}`;
    await member.device.client.setSelfStatus({ customStatus: value });
    member.acked = value;
    member.unsure = [];
  }
  for (const member of members) {
    for (const watched of member.watches) {
      await member.device.waitForStatus(watched, (s) => s.customStatus === `${watched} ${tag}`, `"${tag}"`);
    }
  }
}

/** Resolves once `condition` holds, checked every 50 ms (it reads state that changes without an event). */
async function eventually(condition: () => boolean, what: string, timeoutMs = CALL_TIMEOUT_MS): Promise<void> {
  const giveUpAt = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > giveUpAt) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Resolves once every member has had a write acknowledged after this call. */
async function everyoneServedAgain(what: string): Promise<void> {
  const ackedBefore = members.map((m) => m.acked);
  await eventually(() => members.every((m, i) => m.acked !== ackedBefore[i]), what);
}

async function readAll(client = members[0]!.device.client): Promise<UserStatus[]> {
  return client.getUserStatus(members.map((m) => m.userID));
}

/**
 * The last lines every node (stopped ones included) printed, for a failing test's message;
 * run with PRESENCE_TEST_LOG_LEVEL=info for more than warnings.
 */
function nodeLogTails(lines = 40): string {
  return deployment.nodes
    .map((node) => `--- ${node.nodeId} (exit ${node.child.exitCode ?? node.child.signalCode ?? 'running'}):\n${node.output().trimEnd().split('\n').slice(-lines).join('\n')}`)
    .join('\n');
}

const running = (): NodeProcess[] => deployment.nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
const portOf = (node: NodeProcess): number => Number(new URL(node.url).port);

/** Polls node `via`'s view until it is balanced over `expected` nodes; resolves with the time it took. */
async function balancedVia(via: NodeProcess, expected: number, timeoutMs: number): Promise<number> {
  const startedAt = Date.now();
  let last: unknown;
  while (Date.now() - startedAt < timeoutMs) {
    try {
      const view = (await new AdminClient(via.httpUrl, deployment.adminKey).cluster()) as unknown as ClusterView;
      last = view;
      if (isBalanced(view, expected)) return Date.now() - startedAt;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${via.nodeId} did not see ${expected} balanced nodes within ${timeoutMs} ms: ${JSON.stringify(last)}\nWhat the nodes printed last:\n${nodeLogTails()}`);
}

/** The nodeId owning `userID`'s shard, from node `via`'s view. */
async function ownerOf(userID: string, via: NodeProcess, sdkAppID = app.sdkAppID): Promise<string> {
  const shard = shardOf(sdkAppID, userID);
  const view = (await new AdminClient(via.httpUrl, deployment.adminKey).cluster()) as unknown as ClusterView;
  const owner = view.nodes.find((n) => expandRanges(n.ownedShards).includes(shard));
  if (!owner) throw new Error(`no owner of shard ${shard}`);
  return owner.nodeId;
}

describe('cluster failover', () => {
  it('failover - SIGKILL of a node under churn: its shards are served again, clients reconnect elsewhere, nothing acknowledged is lost, nobody flips', async () => {
    const victim = running()[0]!;
    const load = churn('kill');
    await eventually(() => members.every((m) => m.acked.includes('kill')), 'churn to get going');

    const killedAt = Date.now();
    await victim.kill('SIGKILL');
    const survivor = running()[0]!;
    const rebalancedMs = await balancedVia(survivor, 2, FAILOVER_BOUND_MS);
    // Every user answers again, those whose shards the dead node held included.
    await readAll(await observer(1));
    const servedMs = Date.now() - killedAt;
    // Each member's next acknowledged write shows that its client got through again.
    await everyoneServedAgain('every client to be served again');
    const { calls, failed } = await load.stop();
    console.log(`failover: shards re-owned ${rebalancedMs} ms and every user served ${servedMs} ms after SIGKILL; ${calls} calls, ${failed.length} failed`);

    // Only a call in flight on a socket that died with its node may fail (6012, outcome unknown).
    for (const failure of failed) expect(failure).toMatch(/connection lost/);
    expectNothingLost(await readAll());
    expectNobodyFlipped();
    await expectSubscriptionsIntact('after kill');

    await deployment.addNode(undefined, { port: portOf(victim) });
    await deployment.waitForBalance(3, 60_000);
  });

  it('failover - SIGSTOP longer than the lease: the frozen node stops serving on its own, its users are served elsewhere, and it rejoins on SIGCONT without serving stale state', async () => {
    const [frozen, other] = running() as [NodeProcess, NodeProcess];
    const frozenIndex = running().indexOf(frozen);
    // A user whose shard the frozen node owns, and a watcher connected to the frozen node.
    let target = '';
    for (let k = 0; !target; k++) if ((await ownerOf(`fo-frozen-${k}`, other)) === frozen.nodeId) target = `fo-frozen-${k}`;
    const targetClient = new PresenceClient({ url: deployment.urls(frozenIndex + 1), sdkAppID: app.sdkAppID, requestTimeoutMs: CALL_TIMEOUT_MS });
    extraClients.push(targetClient);
    await targetClient.login(target, app.sig(target));
    await targetClient.setSelfStatus({ customStatus: 'before the freeze' });
    const watcherOnFrozen = await observer(frozenIndex);
    const watcher = new TestDevice(watcherOnFrozen, 'watcher');
    await watcherOnFrozen.subscribeUserStatus([target]);

    frozen.child.kill('SIGSTOP');
    try {
      const takeoverMs = await balancedVia(other, 2, FAILOVER_BOUND_MS);
      await targetClient.setSelfStatus({ customStatus: 'during the freeze' });
      // Asked while frozen, answered once it thaws: the node must not answer from its old copy.
      const askedDuringFreeze = watcherOnFrozen.getUserStatus([target]);
      frozen.child.kill('SIGCONT');
      const [seen] = await askedDuringFreeze;
      expect(seen).toMatchObject({ statusType: UserStatusType.ONLINE, customStatus: 'during the freeze' });
      const rejoinMs = await balancedVia(other, 3, 60_000);
      console.log(`freeze: shards taken over ${takeoverMs} ms after SIGSTOP; rejoined ${rejoinMs} ms after SIGCONT`);
    } finally {
      frozen.child.kill('SIGCONT');
    }
    // After it rejoined, the thawed node serves the user with the latest state, and its watcher hears changes.
    await targetClient.setSelfStatus({ customStatus: 'after the thaw' });
    await watcher.waitForStatus(target, (s) => s.customStatus === 'after the thaw', '"after the thaw"');
    expect((await (await observer(frozenIndex)).getUserStatus([target]))[0]).toMatchObject({ customStatus: 'after the thaw' });
    expectNobodyFlipped();
    await deployment.waitForBalance(3, 60_000);
  });

  it('failover - stopping one NATS server of three: every call keeps succeeding', async () => {
    const load = churn('nats-one');
    await eventually(() => members.every((m) => m.acked.includes('nats-one')), 'churn to get going');
    await deployment.nats.stopServer(1);
    // Calls go on through the two servers left (a stream leader election included).
    await everyoneServedAgain('every member to be acknowledged after the stop');
    const reads = await readAll();
    await deployment.nats.startServer(1);
    await deployment.nats.waitForJetStream();
    const { calls, failed, slowest } = await load.stop();
    // A call whose request or answer was lost with the server is repeated after 2 s of silence.
    console.log(`nats server down: ${calls} calls, ${failed.length} failed; slowest acknowledged (over 1 s): ${slowest.length ? `\n  ${slowest.join('\n  ')}` : 'none'}`);

    expect(failed).toEqual([]);
    expect(reads).toHaveLength(USERS);
    expectNothingLost(await readAll());
    expectNobodyFlipped();
    await expectSubscriptionsIntact('after one NATS server');
    await deployment.waitForBalance(3, 60_000);
  });

  it('failover - stopping and starting the whole NATS cluster: the service recovers by itself with its state', async () => {
    await expectSubscriptionsIntact('before the outage');
    const before = await readAll();
    await Promise.all([0, 1, 2].map((i) => deployment.nats.stopServer(i)));
    const downAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 5_000)); // an outage that outlasts every lease
    await Promise.all([0, 1, 2].map((i) => deployment.nats.startServer(i)));
    await deployment.nats.waitForJetStream(60_000);
    const rebalancedMs = await balancedVia(running()[0]!, 3, 60_000);
    const after = await readAll();
    console.log(`nats cluster restart: balanced ${rebalancedMs} ms after JetStream answered (${Date.now() - downAt} ms after the stop)`);

    expect(after.map((s) => [s.userID, s.statusType, s.customStatus])).toEqual(before.map((s) => [s.userID, s.statusType, s.customStatus]));
    expectNobodyFlipped();
    await expectSubscriptionsIntact('after the outage');
  });

  it('failover - a rolling restart of every node under load loses nothing and flips nobody', async () => {
    const load = churn('rolling');
    await eventually(() => members.every((m) => m.acked.includes('rolling')), 'churn to get going');
    for (const node of [...running()]) {
      await node.stop(); // SIGTERM: drains, handing its shards over at once
      await deployment.addNode(`${node.nodeId}-r`, { port: portOf(node) });
      await deployment.waitForBalance(3, 60_000);
    }
    await everyoneServedAgain('every member to be acknowledged after the restart');
    const { calls, failed, slowest } = await load.stop();
    console.log(`rolling restart: ${calls} calls, ${failed.length} failed; slowest acknowledged (over 1 s): ${slowest.length ? `\n  ${slowest.join('\n  ')}` : 'none'}`);

    // A draining node answers what it started and closes with 1001; the SDK sends what was
    // unanswered again on the next node, so no call fails.
    expect(failed, failed.length ? `failed calls, with what the nodes printed last:\n${nodeLogTails()}` : undefined).toEqual([]);
    expectNothingLost(await readAll());
    expectNobodyFlipped();
    await expectSubscriptionsIntact('after the rolling restart');
  });

  it('restore index - a logged-in user is listed for the next owner, and one who logs out leaves nothing in the bucket, not even a delete marker', async () => {
    const nc = await connect({ servers: deployment.nats.urls });
    try {
      const jsm = await jetstreamManager(nc);
      const userID = 'fo-index-user';
      const subject = `$KV.${BUCKETS.active}.${shardOf(app.sdkAppID, userID)}.${userKey(app.sdkAppID, userID)}`;
      const messagesOf = async (): Promise<number> =>
        (await jsm.streams.info(`KV_${BUCKETS.active}`, { subjects_filter: subject })).state.subjects?.[subject] ?? 0;
      const until = async (count: number, what: string): Promise<void> => {
        const giveUpAt = Date.now() + CALL_TIMEOUT_MS;
        while ((await messagesOf()) !== count) {
          if (Date.now() > giveUpAt) throw new Error(`timed out waiting for ${what}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      };
      const client = new PresenceClient({ url: deployment.urls(0), sdkAppID: app.sdkAppID, requestTimeoutMs: CALL_TIMEOUT_MS });
      extraClients.push(client);
      await client.login(userID, app.sig(userID));
      // Its heartbeat deadline is pending: a node taking the shard over must restore it.
      await until(1, 'the index entry of a logged-in user');
      await client.logout();
      await until(0, 'the index entry to go without a marker');
    } finally {
      await nc.close();
    }
  });

  it('failover - webhooks waiting on a node that is killed are all delivered, in order, by the next owner', async () => {
    const receiver = new WebhookReceiver();
    await receiver.start();
    const port = receiver.port;
    await receiver.down();
    const [victim, via] = running() as [NodeProcess, NodeProcess];
    try {
      const hooked = await deployment.newApp({ callbackUrl: receiver.url });
      const victimIndex = running().indexOf(victim);
      // A user owned by the victim, connected to another node, whose changes wait in its outbox.
      let userID = '';
      for (let k = 0; !userID; k++) if ((await ownerOf(`fo-hooked-${k}`, via, hooked.sdkAppID)) === victim.nodeId) userID = `fo-hooked-${k}`;
      const client = new PresenceClient({ url: deployment.urls(victimIndex + 1), sdkAppID: hooked.sdkAppID, requestTimeoutMs: CALL_TIMEOUT_MS });
      extraClients.push(client);
      await client.login(userID, hooked.sig(userID));
      for (const text of ['a', 'b', 'c']) await client.setSelfStatus({ customStatus: text });

      await victim.kill('SIGKILL');
      await balancedVia(via, 2, FAILOVER_BOUND_MS);
      await receiver.start(port);
      await receiver.until(() => receiver.of(userID).length >= 4, `the 4 events of ${userID}`, 60_000);
      const versions = receiver.of(userID).map((r) => r.body.Version);
      // At least once: a repeat is possible (same EventId), a gap or a reordering is not.
      expect([...new Set(versions)]).toEqual([1, 2, 3, 4]);
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
    } finally {
      await receiver.down().catch(() => undefined);
    }
    await deployment.addNode(undefined, { port: portOf(victim) });
    await deployment.waitForBalance(3, 60_000);
  });
});
