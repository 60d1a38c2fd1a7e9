import { randomBytes, randomUUID } from 'node:crypto';
import { genUserSig } from '../../src/auth/index.js';
import { AdminClient, type AppSettings } from './admin.js';
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

export async function startDeployment(): Promise<Deployment> {
  const adminKey = randomBytes(16).toString('hex');
  const nodes = [await startNodeProcess({ adminKey, nodeId: `e2e-${randomUUID().slice(0, 6)}` })];
  return deploymentOf('embedded', nodes, adminKey, async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  });
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
