import { randomBytes, randomUUID } from 'node:crypto';
import { genUserSig } from '../../src/auth/index.js';
import { desiredOwner } from '../../src/cluster/rendezvous.js';
import { expandRanges } from '../../src/cluster/shardRanges.js';
import { AdminClient, type AppSettings } from './admin.js';
import { startNatsCluster, type NatsCluster } from './natsContainers.js';
import { startNodeProcess, type NodeProcess } from './nodeProcess.js';

export interface TestApp {
  sdkAppID: number;
  secretKey: string;
  /** A UserSig for `userID`; `now` issues it at another time (after a revocation, or already expired). */
  sig(userID: string, options?: { now?: number; expire?: number }): string;
}

/**
 * The presence service under test, as its users see it: one or more node processes
 * and the admin API. `PRESENCE_E2E_MODE` picks the topology; the behaviour suite is
 * the same for all of them.
 */
export interface Deployment {
  readonly mode: string;
  readonly nodes: NodeProcess[];
  readonly admin: AdminClient;
  readonly adminKey: string;
  /** The device URL of node `i` (modulo the node count), to spread clients over nodes. */
  url(i?: number): string;
  /** Creates an app with a fresh sdkAppID, premium with every switch on unless overridden. */
  newApp(settings?: Partial<AppSettings>): Promise<TestApp>;
  stop(): Promise<void>;
}

let nextAppID = 1_500_000_000 + Math.floor(Math.random() * 1_000_000) * 100;

/** `PRESENCE_E2E_MODE`: `embedded` (one node, the default) or `cluster` (3 nodes on a 3-server NATS cluster). */
export const e2eMode = (): string => process.env.PRESENCE_E2E_MODE ?? 'embedded';

export async function startDeployment(): Promise<Deployment> {
  return e2eMode() === 'cluster' ? startClusterDeployment() : startEmbeddedDeployment();
}

export async function startEmbeddedDeployment(): Promise<Deployment> {
  const adminKey = randomBytes(16).toString('hex');
  const nodes = [await startNodeProcess({ adminKey, nodeId: `e2e-${randomUUID().slice(0, 6)}` })];
  return deploymentOf('embedded', nodes, adminKey, async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  });
}

export interface ClusterDeployment extends Deployment {
  readonly nats: NatsCluster;
  /**
   * Starts one more node on the same NATS cluster; with `port`, a replacement that
   * takes over the device URL of a node that is gone (a restart on the same host).
   */
  addNode(nodeId?: string, options?: { port?: number }): Promise<NodeProcess>;
  /** The device URLs of every running node, starting at node `i`: a client's list to fail over along. */
  urls(i?: number): string[];
  /** Resolves once every shard is owned and `expectedNodes` nodes are in the view. */
  waitForBalance(expectedNodes?: number, timeoutMs?: number): Promise<ClusterView>;
}

export interface ClusterView {
  shardCount: number;
  unownedShards: number;
  nodes: Array<{ nodeId: string; shards: number; ownedShards: string; actors?: number }>;
}

/**
 * `expectedNodes` nodes in the view, each owning exactly the shards rendezvous hashing gives it
 * over the view: not only every shard owned, but no move still to come (a shard counted while
 * a node with the wrong share still hands some over would let a test start mid-move).
 */
export const isBalanced = (view: ClusterView, expectedNodes: number): boolean => {
  if (view.nodes.length !== expectedNodes || view.unownedShards) return false;
  const ids = view.nodes.map((n) => n.nodeId);
  const due = new Map<string, number[]>(ids.map((id) => [id, []]));
  for (let shard = 0; shard < view.shardCount; shard++) due.get(desiredOwner(shard, ids)!)!.push(shard);
  return view.nodes.every((n) => expandRanges(n.ownedShards).join() === due.get(n.nodeId)!.join());
};

/** 3 presence node processes on a 3-server JetStream cluster in containers. */
export async function startClusterDeployment(options: { nodes?: number } = {}): Promise<ClusterDeployment> {
  const adminKey = randomBytes(16).toString('hex');
  const nats = await startNatsCluster();
  const nodes: NodeProcess[] = [];
  let started = 0;
  const addNode = async (nodeId = `n${++started}-${randomUUID().slice(0, 4)}`, options: { port?: number } = {}) => {
    const node = await startNodeProcess({ adminKey, nodeId, nats: nats.urls, env: { PRESENCE_NATS_REPLICAS: '3' }, ...options });
    nodes.push(node);
    return node;
  };
  try {
    await Promise.all(Array.from({ length: options.nodes ?? 3 }, () => addNode()));
  } catch (error) {
    await Promise.allSettled(nodes.map((node) => node.kill()));
    await nats.stop();
    throw error;
  }
  const base = deploymentOf('cluster', nodes, adminKey, async () => {
    await Promise.allSettled(nodes.map((node) => node.kill()));
    await nats.stop();
  });
  const live = () => nodes.filter((node) => node.child.exitCode === null && node.child.signalCode === null);
  const deployment: ClusterDeployment = {
    ...base,
    nats,
    addNode,
    url: (i = 0) => {
      const running = live();
      return running[i % running.length]!.url;
    },
    urls: (i = 0) => {
      const running = live().map((node) => node.url);
      return running.map((_, k) => running[(i + k) % running.length]!);
    },
    async waitForBalance(expectedNodes = live().length, timeoutMs = 30_000) {
      const giveUpAt = Date.now() + timeoutMs;
      let last: unknown;
      for (;;) {
        // Every node's own view: each counts the shards it serves, not only the claims it has seen.
        try {
          const views = await Promise.all(live().map((node) => new AdminClient(node.httpUrl, adminKey).cluster() as unknown as Promise<ClusterView>));
          last = views;
          if (views.every((view) => isBalanced(view, expectedNodes))) return views[0]!;
        } catch (error) {
          last = error;
        }
        if (Date.now() > giveUpAt) throw new Error(`cluster not balanced over ${expectedNodes} nodes in ${timeoutMs} ms: ${JSON.stringify(last)}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
    async newApp(settings = {}) {
      const app = await base.newApp(settings);
      // Every node learns of the app through its watch of the apps bucket: wait until all have it.
      await Promise.all(
        live().map(async (node) => {
          const admin = new AdminClient(node.httpUrl, adminKey);
          for (let i = 0; ; i++) {
            const seen = await admin.getApp(app.sdkAppID).then(
              () => true,
              () => false,
            );
            if (seen) return;
            if (i > 100) throw new Error(`node ${node.nodeId} did not learn app ${app.sdkAppID}`);
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }),
      );
      return app;
    },
  };
  // A cluster that never balances would otherwise leave its nodes and NATS containers running.
  await deployment.waitForBalance(options.nodes ?? 3).catch(async (error: unknown) => {
    await deployment.stop();
    throw error;
  });
  return deployment;
}

export function deploymentOf(mode: string, nodes: NodeProcess[], adminKey: string, stop: () => Promise<void>): Deployment {
  const admin = new AdminClient(nodes[0]!.httpUrl, adminKey);
  return {
    mode,
    nodes,
    admin,
    adminKey,
    url: (i = 0) => nodes[i % nodes.length]!.url,
    async newApp(settings = {}) {
      const sdkAppID = nextAppID++;
      const secretKey = randomBytes(32).toString('hex');
      await admin.putApp(sdkAppID, {
        secretKey,
        edition: 'premium',
        userStatusEnabled: true,
        friendStatusAutoNotify: true,
        ...settings,
      });
      return {
        sdkAppID,
        secretKey,
        sig: (userID, options = {}) => genUserSig({ sdkAppID, secretKey, userID, ...options }),
      };
    },
    stop,
  };
}
