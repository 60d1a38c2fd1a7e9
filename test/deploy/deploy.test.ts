/**
 * The deployment artefacts, end to end on a local Docker engine with no registry:
 *
 * 1. builds the base image local/node:20 (deploy/node-image/build.sh) if missing and the presence
 *    image from deploy/Dockerfile on it (NODE_IMAGE=local/node:20; elsewhere the official image);
 * 2. starts the services of deploy/compose.yaml (3 NATS servers from PRESENCE_NATS_IMAGE, 3 presence
 *    nodes, the LB) through testcontainers (no `docker compose` here: see composeRunner.ts);
 * 3. runs the SDK smoke scenario through the LB: two users log in, one subscribes to the other,
 *    a custom status change is pushed; the image's HEALTHCHECK turns healthy;
 * 4. `docker kill`s the node holding the subscriber's socket: both clients carry on through the
 *    LB on the other nodes and a new change is still delivered;
 * 5. validates deploy/k8s against the Kubernetes schemas (validateK8s.ts).
 *
 * Long: ~1.5 min when the images are cached, a few more on the first build.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Wait } from 'testcontainers';
import { genUserSig } from '../../src/auth/index.js';
import { PresenceClient } from '../../src/client/index.js';
import { AdminClient } from '../support/admin.js';
import { TestDevice } from '../support/clients.js';
import { isBalanced, type ClusterView } from '../support/deployment.js';
import { loadCompose, startCompose, type StartedCompose } from './composeRunner.js';
import { validateK8sManifests } from './validateK8s.js';

process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= '127.0.0.1';

const ROOT = resolve(import.meta.dirname, '../..');
/** deploy/Dockerfile's base; a `local/` one is built here first by deploy/node-image/build.sh. */
const NODE_IMAGE = process.env.NODE_IMAGE ?? 'local/node:20';
const PRESENCE_IMAGE = process.env.PRESENCE_IMAGE ?? 'presence-cluster:deploy-test';
const NATS_IMAGE = process.env.PRESENCE_NATS_IMAGE ?? 'local/nats:2.9';
const TEST_LABEL = 'presence-cluster.deploy-test=true';
const run = promisify(execFile);

const progress = (line: string) => process.stdout.write(`[deploy] ${line}\n`);

/** Runs a command, printing the lines that show progress (`Step 5/26 : RUN ...`), keeping the rest for an error. */
function runWithProgress(cmd: string, args: string[], show: (line: string) => boolean): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim()) continue;
        tail.push(line);
        if (tail.length > 40) tail.shift();
        if (show(line)) progress(`  ${line.slice(0, 140)}`);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${tail.join('\n')}`))));
  });
}

async function removeLeftovers(): Promise<void> {
  const { stdout } = await run('docker', ['ps', '-aq', '--filter', `label=${TEST_LABEL}`]);
  const ids = stdout.split('\n').filter(Boolean);
  if (ids.length) await run('docker', ['rm', '-f', ...ids]).catch(() => undefined);
}

async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const giveUpAt = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > giveUpAt) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface LbStatus {
  backends: Array<{ address: string; healthy: boolean; reachable: boolean; tunnels: number; tunnelPaths: string[] }>;
}

describe('deployment: the image and the compose topology behind the LB', () => {
  let compose: StartedCompose | undefined;
  let lbHttp = '';
  const adminKey = randomBytes(16).toString('hex');
  const clients: PresenceClient[] = [];
  const lbStatus = async (): Promise<LbStatus> => (await (await fetch(`${lbHttp}/lb/status`)).json()) as LbStatus;

  beforeAll(async () => {
    const t0 = Date.now();
    await removeLeftovers();
    if (NODE_IMAGE.startsWith('local/')) {
      progress(`base image ${NODE_IMAGE} (deploy/node-image/build.sh; reused if present)`);
      await runWithProgress('bash', ['deploy/node-image/build.sh', NODE_IMAGE], () => true);
    }
    const previous = await run('docker', ['image', 'inspect', '-f', '{{.Id}}', PRESENCE_IMAGE]).then((r) => r.stdout.trim(), () => '');
    progress(`building ${PRESENCE_IMAGE} from deploy/Dockerfile on ${NODE_IMAGE} (cached layers are reused)`);
    await runWithProgress(
      'docker',
      ['build', '-f', 'deploy/Dockerfile', '--build-arg', `NODE_IMAGE=${NODE_IMAGE}`, '-t', PRESENCE_IMAGE, '.'],
      (line) => /^Step \d+\/\d+ : (RUN|FROM)|^Successfully tagged|error/i.test(line),
    );
    // The image this build replaced is no longer tagged: remove it (ignored if something still uses it).
    const { stdout: current } = await run('docker', ['image', 'inspect', '-f', '{{.Id}}', PRESENCE_IMAGE]);
    if (previous && previous !== current.trim()) await run('docker', ['rmi', previous]).catch(() => undefined);
    const { stdout: config } = await run('docker', ['image', 'inspect', '-f', '{{json .Config}}', PRESENCE_IMAGE]);
    const image = JSON.parse(config) as { User: string; Healthcheck?: { Test: string[] }; Cmd: string[] };
    expect(image.User).toBe('1000:1000'); // non-root
    expect(image.Healthcheck?.Test.join(' ')).toContain('/healthz');
    progress(`images ready in ${((Date.now() - t0) / 1000).toFixed(1)} s; starting deploy/compose.yaml`);

    const services = loadCompose(resolve(ROOT, 'deploy/compose.yaml'), {
      PRESENCE_IMAGE,
      PRESENCE_NATS_IMAGE: NATS_IMAGE,
      PRESENCE_ADMIN_KEY: adminKey,
      PRESENCE_LOG_LEVEL: 'info',
    });
    expect(services.map((s) => s.name).sort()).toEqual(['lb', 'nats-1', 'nats-2', 'nats-3', 'presence-1', 'presence-2', 'presence-3']);
    compose = await startCompose(services, {
      log: progress,
      waitFor: (s) =>
        s.name.startsWith('nats') ? Wait.forLogMessage(/Server is ready/)
        : s.name === 'lb' ? Wait.forLogMessage(/"msg":"listening"/)
        : Wait.forLogMessage(/presence-cluster node .* on the nats transport/),
    });
    lbHttp = `http://127.0.0.1:${compose.mappedPort('lb', 8080)}`;
    await eventually('the LB to see 3 ready nodes', 60_000, async () => {
      const s = await lbStatus();
      return s.backends.filter((b) => b.healthy).length === 3 ? s : undefined;
    });
    const admin = new AdminClient(lbHttp, adminKey);
    const view = await eventually('every shard owned by the 3 nodes', 60_000, async () => {
      const v = (await admin.cluster()) as unknown as ClusterView;
      return isBalanced(v, 3) ? v : undefined;
    });
    progress(`topology up in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${view.nodes.map((n) => `${n.nodeId}=${n.shards}`).join(' ')}`);
  });

  afterAll(async () => {
    for (const client of clients) await client.logout().catch(() => undefined);
    await compose?.stop();
    await removeLeftovers().catch(() => undefined);
  });

  it('serves the SDK through the LB and survives a docker kill of a node', async () => {
    const admin = new AdminClient(lbHttp, adminKey);
    const sdkAppID = 1_600_000_000 + Math.floor(Math.random() * 1_000_000);
    const secretKey = randomBytes(32).toString('hex');
    await admin.putApp(sdkAppID, { secretKey, edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify: true });
    // Every node learns the app through its watch of the apps bucket; round-robin spreads these GETs.
    let inARow = 0;
    await eventually('all nodes to know the app', 30_000, async () => {
      inARow = (await admin.getApp(sdkAppID).then(() => true, () => false)) ? inARow + 1 : 0;
      return inARow >= 6 ? true : undefined;
    });

    const ws = `ws://127.0.0.1:${compose!.mappedPort('lb', 8080)}/ws`;
    const device = async (userID: string) => {
      // The query string only labels the socket in the LB's /lb/status; the node ignores it.
      const client = new PresenceClient({ url: `${ws}?device=${userID}`, sdkAppID, reconnect: { initialDelayMs: 100, maxDelayMs: 1_000 } });
      clients.push(client);
      const d = new TestDevice(client, userID);
      await client.login(userID, genUserSig({ sdkAppID, secretKey, userID }));
      return d;
    };
    const alice = await device('alice');
    const bob = await device('bob');
    await bob.client.subscribeUserStatus(['alice']);
    await alice.client.setSelfStatus({ customStatus: 'in a call' });
    await bob.waitForStatus('alice', (s) => s.customStatus === 'in a call', "alice's 'in a call'");

    // The image's HEALTHCHECK (node + fetch, no curl) works in the shell-less image.
    const health = await eventually('presence-1 to be healthy (Docker HEALTHCHECK)', 45_000, async () => {
      const { stdout } = await run('docker', ['inspect', '-f', '{{.State.Health.Status}}', compose!.container('presence-1').getId()]);
      return stdout.trim() === 'healthy' ? stdout.trim() : undefined;
    });
    expect(health).toBe('healthy');

    // Kill the node that holds bob's socket.
    const before = await lbStatus();
    const bobsBackend = before.backends.find((b) => b.tunnelPaths.some((p) => p.includes('device=bob')));
    expect(bobsBackend, JSON.stringify(before)).toBeDefined();
    const victim = bobsBackend!.address.split(':')[0]!;
    const alicesBackend = before.backends.find((b) => b.tunnelPaths.some((p) => p.includes('device=alice')))?.address;
    progress(`bob on ${bobsBackend!.address}, alice on ${alicesBackend}; docker kill ${victim}`);
    const killedAt = Date.now();
    bob.states.length = 0;
    await run('docker', ['kill', compose!.container(victim).getId()]);

    await bob.waitForState('connecting');
    await bob.until(() => bob.client.getConnectionState() === 'connected', 'bob to reconnect through the LB', 30_000);
    progress(`bob reconnected ${Date.now() - killedAt} ms after the kill`);
    const after = await lbStatus();
    const bobNow = after.backends.find((b) => b.tunnelPaths.some((p) => p.includes('device=bob')));
    expect(bobNow?.address).not.toBe(bobsBackend!.address);

    // The subscription survived (bob's actor moved with its shard): a new change still arrives.
    // setSelfStatus may wait out the shards of the dead node being taken over (~3-4 s).
    await alice.client.setSelfStatus({ customStatus: 'back at my desk' });
    await bob.until(
      () => bob.statusesOf('alice').some((s) => s.customStatus === 'back at my desk'),
      "bob to receive alice's change after the kill",
      30_000,
    );
    progress(`change delivered ${Date.now() - killedAt} ms after the kill`);
    expect(alice.client.getConnectionState()).toBe('connected');
    const lbAfter = await eventually('the LB to mark the killed node down', 10_000, async () => {
      const s = await lbStatus();
      return s.backends.find((b) => b.address === bobsBackend!.address && !b.healthy) ? s : undefined;
    });
    expect(lbAfter.backends.filter((b) => b.healthy)).toHaveLength(2);
  });
});

describe('deployment: Kubernetes manifests', () => {
  it('validate against the Kubernetes schemas', async () => {
    const report = await validateK8sManifests(resolve(ROOT, 'deploy/k8s'));
    expect(report.errors, report.errors.join('\n')).toEqual([]);
    expect(report.kinds).toEqual(expect.arrayContaining(['Deployment', 'Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'StatefulSet', 'Secret']));
  });
});
