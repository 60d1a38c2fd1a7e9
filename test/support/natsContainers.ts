/**
 * NATS servers in containers for integration and cluster tests.
 *
 * The image comes from `PRESENCE_NATS_IMAGE`, default the official `nats:2.10`.
 * On machines without a registry (this one and CI) `.ci/run` sets it to
 * `local/nats:2.9`, built by `deploy/nats-image/build.sh` from Debian's
 * nats-server. That image is `FROM scratch` (no shell), so readiness is the
 * "Server is ready" log line at first start and a NATS connection from the host
 * after a restart, never a port check run inside the container.
 *
 * ```ts
 * const server = await startNatsServer();          // one server, JetStream on
 * const cluster = await startNatsCluster();        // n1..n3, JetStream cluster `pc`
 * await cluster.stopServer(0);                     // SIGKILL, keeps its /data
 * await cluster.startServer(0);                    // same URL, same store
 * await cluster.stop();
 * ```
 */
import { createServer } from 'node:net';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  GenericContainer,
  Network,
  Wait,
  getContainerRuntimeClient,
  type StartedNetwork,
  type StartedTestContainer,
} from 'testcontainers';

// Without a registry testcontainers must neither start Ryuk nor run `alpine` to
// find the Docker host. Both are read when the first container starts, not at
// import, so setting them here (after the hoisted imports) is early enough.
function configureTestcontainers(): void {
  process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
  process.env.TESTCONTAINERS_HOST_OVERRIDE ??= '127.0.0.1';
}
configureTestcontainers();

export const natsImage = (): string => process.env.PRESENCE_NATS_IMAGE ?? 'nats:2.10';

const CLIENT_PORT = 4222;
const ROUTE_PORT = 6222;
const CLUSTER_NAME = 'pc';
const READY = /Server is ready/;

export interface NatsServer {
  url: string;
  container: StartedTestContainer;
  stop(): Promise<void>;
}

export interface ClusterServer {
  /** Server name and network alias: `n1`, `n2`, `n3`. */
  name: string;
  /** `nats://127.0.0.1:<port>`: the host port is fixed, so it survives a stop and start. */
  url: string;
  container: StartedTestContainer;
  running: boolean;
}

export interface StopHow {
  signal?: 'SIGKILL' | 'SIGTERM';
}

export interface NatsCluster {
  urls: string[];
  servers: ClusterServer[];
  /**
   * Stops server `i`: killed (SIGKILL, no goodbye to its peers) unless `signal`
   * is `SIGTERM` (a clean shutdown). The container and its JetStream store stay.
   */
  stopServer(i: number, how?: StopHow): Promise<void>;
  /** Starts a stopped server `i` again on the same URL and store; resolves once it accepts clients. */
  startServer(i: number): Promise<void>;
  /** Stops (as `stopServer`) and starts server `i`. */
  restartServer(i: number, how?: StopHow): Promise<void>;
  /** Resolves once a JetStream API call succeeds through every running server (meta leader elected). */
  waitForJetStream(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** One NATS server with JetStream. */
export async function startNatsServer(): Promise<NatsServer> {
  configureTestcontainers();
  const container = await new GenericContainer(natsImage())
    .withCommand(['-js', '-sd', '/data', '--server_name', 'single'])
    .withExposedPorts(CLIENT_PORT)
    .withWaitStrategy(Wait.forLogMessage(READY))
    .withStartupTimeout(60_000)
    .start();
  return {
    url: `nats://${container.getHost()}:${container.getMappedPort(CLIENT_PORT)}`,
    container,
    stop: async () => {
      await container.stop({ timeout: 0 });
    },
  };
}

/**
 * Three routed JetStream servers on their own Docker network, resolved once
 * JetStream answers through each (unless `waitForJetStream: false`). Each binds a fixed
 * free host port and advertises `127.0.0.1:<that port>` to clients, so URLs stay
 * valid across restarts and the servers nats.js discovers are reachable from the host.
 */
export async function startNatsCluster(
  options: { size?: number; waitForJetStream?: boolean } = {},
): Promise<NatsCluster> {
  configureTestcontainers();
  const size = options.size ?? 3;
  const names = Array.from({ length: size }, (_, i) => `n${i + 1}`);
  const routes = names.map((name) => `nats://${name}:${ROUTE_PORT}`).join(',');
  const network = await new Network().start();
  const servers: ClusterServer[] = [];
  try {
    const ports = await freePorts(size);
    const started = await Promise.allSettled(
      names.map((name, i) => startClusterMember(network, name, ports[i]!, routes)),
    );
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) {
      await Promise.allSettled(started.map((r) => (r.status === 'fulfilled' ? r.value.stop({ timeout: 0 }) : undefined)));
      throw failed.reason;
    }
    started.forEach((r, i) => {
      if (r.status !== 'fulfilled') return;
      servers.push({ name: names[i]!, url: `nats://127.0.0.1:${ports[i]!}`, container: r.value, running: true });
    });
  } catch (err) {
    await network.stop().catch(() => undefined);
    throw err;
  }

  const server = (i: number): ClusterServer => {
    const s = servers[i];
    if (!s) throw new RangeError(`no server ${i}: the cluster has servers 0..${servers.length - 1}`);
    return s;
  };
  // SIGKILL by default: `docker stop -t 0` would send SIGTERM first, and a 2.9
  // server that gets even a moment hands its stream leaderships over cleanly.
  const stopServer = async (i: number, how: StopHow = {}): Promise<void> => {
    const s = server(i);
    const client = await getContainerRuntimeClient();
    const container = client.container.getById(s.container.getId());
    if (how.signal === 'SIGTERM') await client.container.stop(container, { timeout: 10_000 });
    else {
      await container.kill({ signal: 'SIGKILL' });
      await container.wait();
    }
    s.running = false;
  };
  // Started with a plain `docker start`, then ready once it accepts a NATS connection:
  // testcontainers' `restart()` waits for "Server is ready" in the logs since the new start,
  // and under load that wait has missed a line the server did print.
  const startServer = async (i: number): Promise<void> => {
    const s = server(i);
    const client = await getContainerRuntimeClient();
    await client.container.start(client.container.getById(s.container.getId()));
    await waitForConnection(s.url, 60_000);
    s.running = true;
  };
  const cluster: NatsCluster = {
    urls: servers.map((s) => s.url),
    servers,
    stopServer,
    startServer,
    restartServer: async (i, how) => {
      await stopServer(i, how);
      await startServer(i);
    },
    waitForJetStream: (timeoutMs = 30_000) =>
      waitForJetStream(servers.filter((s) => s.running).map((s) => s.url), timeoutMs),
    stop: async () => {
      await Promise.allSettled(servers.map((s) => s.container.stop({ timeout: 0 })));
      await network.stop();
    },
  };
  try {
    if (options.waitForJetStream !== false) await cluster.waitForJetStream();
  } catch (err) {
    await cluster.stop().catch(() => undefined);
    throw err;
  }
  return cluster;
}

async function startClusterMember(
  network: StartedNetwork,
  name: string,
  hostPort: number,
  routes: string,
): Promise<StartedTestContainer> {
  return new GenericContainer(natsImage())
    .withNetwork(network)
    .withNetworkAliases(name)
    .withCommand([
      '--server_name', name,
      '-js', '-sd', '/data',
      '--cluster_name', CLUSTER_NAME,
      '--cluster', `nats://0.0.0.0:${ROUTE_PORT}`,
      '--routes', routes,
      '--client_advertise', `127.0.0.1:${hostPort}`,
    ])
    .withExposedPorts({ container: CLIENT_PORT, host: hostPort })
    .withWaitStrategy(Wait.forLogMessage(READY))
    .withStartupTimeout(60_000)
    .start();
}

/** Resolves once a NATS client can connect to `url`. */
async function waitForConnection(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const nc = await connect({ servers: [url], timeout: 2_000, reconnect: false }).catch((err: unknown) => {
      if (Date.now() > deadline) throw new Error(`NATS at ${url} not accepting connections within ${timeoutMs} ms`, { cause: err });
      return null;
    });
    if (nc) return nc.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Polls `$JS.API.INFO` through each URL until all answer: in a cluster that needs
 * the routes up and a JetStream meta leader elected.
 */
export async function waitForJetStream(urls: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const url of urls) {
    let lastError: unknown;
    for (;;) {
      if (Date.now() > deadline) {
        throw new Error(`JetStream at ${url} not ready within ${timeoutMs} ms`, { cause: lastError });
      }
      const nc = await connect({ servers: [url], timeout: 2_000, reconnect: false }).catch((err: unknown) => {
        lastError = err;
        return null;
      });
      if (nc) {
        try {
          const jsm = await jetstreamManager(nc, { timeout: 2_000 });
          await jsm.getAccountInfo();
          break;
        } catch (err) {
          lastError = err;
        } finally {
          await nc.close().catch(() => undefined);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/**
 * Ports free a moment ago, drawn below the ephemeral range (32768-60999) so that
 * no outgoing connection takes one while its server is stopped.
 */
async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let attempt = 0; ports.size < n; attempt++) {
    if (attempt > 200) throw new Error(`no ${n} free ports in 20000-32767`);
    const port = 20_000 + Math.floor(Math.random() * 12_768);
    if (!ports.has(port) && (await isFree(port))) ports.add(port);
  }
  return [...ports];
}

const isFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '0.0.0.0', () => srv.close(() => resolve(true)));
  });
