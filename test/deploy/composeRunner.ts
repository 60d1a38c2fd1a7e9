/**
 * Starts the services of deploy/compose.yaml with testcontainers, for machines without the
 * `docker compose` plugin (this one and CI). compose.yaml stays the one description of the
 * topology: image, command, environment, depends_on (start order) and ports are read from it,
 * `${VAR}`, `${VAR:-default}` and `${VAR:?message}` are interpolated from `vars`. Services in a
 * profile are skipped. build, restart, stop_grace_period, volumes and healthcheck are ignored (the
 * test builds the image itself; data lives in the container); any other service key fails the run,
 * so compose.yaml cannot silently grow something the test does not honour.
 *
 * Every service joins one new Docker network under its service name, as in compose. Published
 * ports go to free host ports (`mappedPort`). Containers and network carry testcontainers' labels
 * (org.testcontainers=true), so CI's cleanup finds them even if `stop` never runs.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { GenericContainer, Network, type StartedNetwork, type StartedTestContainer, type WaitStrategy } from 'testcontainers';

const HONOURED = new Set(['image', 'command', 'environment', 'depends_on', 'ports']);
const IGNORED = new Set(['build', 'restart', 'stop_grace_period', 'volumes', 'healthcheck', 'profiles']);

export interface ComposeService {
  name: string;
  image: string;
  command?: string[];
  environment: Record<string, string>;
  dependsOn: string[];
  /** Container ports published by `ports:`. */
  ports: number[];
}

export function interpolate(value: string, vars: Record<string, string | undefined>, where: string): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g, (_, name: string, op: string | undefined, arg: string | undefined) => {
    const v = vars[name];
    const unset = op?.startsWith(':') ? !v : v === undefined;
    if (!unset) return v!;
    if (op?.endsWith('-')) return arg ?? '';
    if (op?.endsWith('?')) throw new Error(`${where}: ${name} is required: ${arg}`);
    return '';
  });
}

/** The services of a compose file that run without a profile, interpolated. */
export function loadCompose(path: string, vars: Record<string, string | undefined>): ComposeService[] {
  const doc = parse(readFileSync(path, 'utf8'), { merge: true }) as { services: Record<string, Record<string, unknown>> };
  const services: ComposeService[] = [];
  for (const [name, raw] of Object.entries(doc.services)) {
    if (raw.profiles) continue;
    for (const key of Object.keys(raw)) {
      if (!HONOURED.has(key) && !IGNORED.has(key)) throw new Error(`${path}: service ${name} uses '${key}', which the deploy test cannot honour`);
    }
    const at = `${path} service ${name}`;
    const env = (raw.environment ?? {}) as Record<string, string | number> | string[];
    if (Array.isArray(env)) throw new Error(`${at}: write environment as a map`);
    const command = raw.command as string[] | string | undefined;
    if (typeof command === 'string') throw new Error(`${at}: write command as a list`);
    const dependsOn = (raw.depends_on ?? []) as string[] | Record<string, unknown>;
    services.push({
      name,
      image: interpolate(String(raw.image), vars, at),
      ...(command ? { command: command.map((c) => interpolate(String(c), vars, at)) } : {}),
      environment: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(String(v), vars, at)])),
      dependsOn: Array.isArray(dependsOn) ? dependsOn : Object.keys(dependsOn),
      ports: ((raw.ports ?? []) as string[]).map((p) => {
        const container = Number(interpolate(String(p), vars, at).split(':').pop()!.split('/')[0]);
        if (!Number.isInteger(container)) throw new Error(`${at}: cannot read port ${p}`);
        return container;
      }),
    });
  }
  return services;
}

export interface StartedCompose {
  network: StartedNetwork;
  services: ComposeService[];
  container(name: string): StartedTestContainer;
  mappedPort(name: string, port: number): number;
  stop(): Promise<void>;
}

/**
 * Starts the services in depends_on order (each level in parallel), each resolved by its wait
 * strategy. On a failure everything started so far is removed before the error is rethrown.
 */
export async function startCompose(
  services: ComposeService[],
  options: { waitFor: (service: ComposeService) => WaitStrategy; log?: (line: string) => void },
): Promise<StartedCompose> {
  const network = await new Network().start();
  const started = new Map<string, StartedTestContainer>();
  const stop = async () => {
    await Promise.allSettled([...started.values()].map((c) => c.stop({ timeout: 0 })));
    started.clear();
    await network.stop().catch(() => undefined);
  };
  try {
    const pending = new Map(services.map((s) => [s.name, s]));
    while (pending.size > 0) {
      const level = [...pending.values()].filter((s) => s.dependsOn.every((d) => !pending.has(d)));
      if (level.length === 0) throw new Error(`depends_on cycle among ${[...pending.keys()].join(', ')}`);
      options.log?.(`starting ${level.map((s) => s.name).join(', ')}`);
      const results = await Promise.allSettled(
        level.map(async (s) => {
          let container = new GenericContainer(s.image)
            .withNetwork(network)
            .withNetworkAliases(s.name)
            .withName(`${s.name}-${network.getName().slice(-8)}`)
            .withEnvironment(s.environment)
            .withLabels({ 'com.docker.compose.service': s.name, 'presence-cluster.deploy-test': 'true' })
            .withWaitStrategy(options.waitFor(s))
            .withStartupTimeout(120_000);
          if (s.command) container = container.withCommand(s.command);
          if (s.ports.length) container = container.withExposedPorts(...s.ports);
          started.set(s.name, await container.start());
        }),
      );
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      for (const s of level) pending.delete(s.name);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const container = (name: string) => {
    const c = started.get(name);
    if (!c) throw new Error(`no running service ${name}`);
    return c;
  };
  return { network, services, container, mappedPort: (name, port) => container(name).getMappedPort(port), stop };
}
