/**
 * Static contract checks of deploy/ against what the code does: fast (no image build, no
 * containers), so they run on every change. deploy.test.ts is the slow end-to-end run.
 *
 *   npx vitest run --project deploy test/deploy/deploy-contract.test.ts
 *
 * What they hold the files to:
 * - the NATS config of k8s/nats.yaml is one nats-server accepts (nats-server -t), and its lame
 *   duck mode is really entered when a pod stops (SIGTERM alone shuts nats-server down at once);
 * - the stop grace periods cover a node's worst drain: the gateway waits for every socket's close
 *   handshake, which `ws` gives up on only after its close timeout (30 s) for a device that does
 *   not answer (a phone whose network went away), then the shards are handed over;
 * - a Deployment scaled by an HPA does not pin spec.replicas (each `kubectl apply` would reset it);
 * - and the rest of the deployment contract: PRESENCE_* names the config reads, ports, probes,
 *   non-root, the admin key from a Secret, NATS replicas = servers = routes, persistent storage.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { interpolate } from './composeRunner.js';

const ROOT = resolve(import.meta.dirname, '../..');
const read = (path: string) => readFileSync(resolve(ROOT, path), 'utf8');
const run = promisify(execFile);

// ---- the files ------------------------------------------------------------------------------

type K8sObj = { apiVersion: string; kind: string; metadata: { name: string }; spec?: any; data?: Record<string, string>; stringData?: Record<string, string> };
const k8s: K8sObj[] = ['nats.yaml', 'presence.yaml', 'secret.yaml'].flatMap((file) =>
  parseAllDocuments(read(`deploy/k8s/${file}`)).map((d) => d.toJS() as K8sObj).filter(Boolean),
);
const k8sObj = (kind: string, name: string) => {
  const o = k8s.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`deploy/k8s has no ${kind}/${name}`);
  return o;
};
const presenceDeploy = k8sObj('Deployment', 'presence');
const presencePod = presenceDeploy.spec.template.spec;
const presenceContainer = presencePod.containers.find((c: any) => c.name === 'presence');
const natsSts = k8sObj('StatefulSet', 'nats');
const natsPod = natsSts.spec.template.spec;
const natsContainer = natsPod.containers.find((c: any) => c.name === 'nats');
const natsConf = k8sObj('ConfigMap', 'nats-config').data!['nats.conf']!;
const secret = k8sObj('Secret', 'presence-env');

type ComposeService = Record<string, any>;
const compose = parse(read('deploy/compose.yaml'), { merge: true }) as { services: Record<string, ComposeService> };
const services = compose.services;
const nodeServices = Object.keys(services).filter((n) => /^presence-\d+$/.test(n));
const natsServices = Object.keys(services).filter((n) => /^nats-\d+$/.test(n));

const dockerfile = read('deploy/Dockerfile');
const configSource = read('src/config.ts');

// ---- helpers --------------------------------------------------------------------------------

/** A compose duration (`30s`, `1m30s`, `1m`) in seconds. */
function composeSeconds(value: string | number | undefined): number {
  if (value === undefined) return 10; // Docker's default
  if (typeof value === 'number') return value;
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us)/g)];
  if (parts.length === 0) throw new Error(`cannot read the duration ${value}`);
  const unit: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001, us: 0.000001 };
  return parts.reduce((sum, [, n, u]) => sum + Number(n) * unit[u!]!, 0);
}

/** A nats.conf duration (`30s`, `2m`). */
const natsSeconds = (conf: string, key: string): number | undefined => {
  const m = new RegExp(`^\\s*${key}\\s*[:=]?\\s*"?(\\S+?)"?\\s*$`, 'm').exec(conf);
  return m ? composeSeconds(m[1]) : undefined;
};

/** How long a container's preStop hook keeps it running before SIGTERM, in seconds. */
function preStopSeconds(container: any): number {
  const hook = container.lifecycle?.preStop;
  if (!hook) return 0;
  if (hook.sleep) return Number(hook.sleep.seconds);
  const command = (hook.exec?.command ?? []).join(' ');
  const timeout = /setTimeout\([^,]*,\s*(\d+)\s*\)/.exec(command);
  if (timeout) return Number(timeout[1]) / 1000;
  const sleep = /\bsleep\s+(\d+)/.exec(command);
  return sleep ? Number(sleep[1]) : 0;
}

/**
 * How long the gateway may wait for one socket's close handshake at SIGTERM: `ws` destroys a
 * socket that never answers the close frame after its close timeout, the `closeTimeout` that
 * src/gateway/gateway.ts sets (else ws's default, 30 s: with it, a node with one silent device
 * was measured to exit 30.0 s after SIGTERM, against ~0.1 s when every device answers).
 */
function wsCloseTimeoutSeconds(): number {
  const gateway = read('src/gateway/gateway.ts');
  const own = /closeTimeout:\s*([\d_]+)/.exec(gateway);
  if (own) return Number(own[1]!.replace(/_/g, '')) / 1000;
  const constants = resolve(ROOT, 'node_modules/ws/lib/constants.js');
  const m = existsSync(constants) ? /CLOSE_TIMEOUT:\s*(\d+)/.exec(readFileSync(constants, 'utf8')) : null;
  return m ? Number(m[1]) / 1000 : 30;
}
/**
 * After the sockets: every shard handed over (each responder drained, bounded by 2 s in
 * nats.ts, its actors written), `leave`, then the NATS connection drained (bounded by 5 s).
 */
const HANDOVER_MARGIN_S = 10;

/** The PRESENCE_* variables src/config.ts reads. */
const configVars = new Set([...configSource.matchAll(/env\.(PRESENCE_[A-Z_]+)/g)].map((m) => m[1]!));

// ---- NATS on Kubernetes ---------------------------------------------------------------------

describe('deploy/k8s/nats.yaml: the NATS cluster', () => {
  it('nats.conf sets no lame_duck_duration below the 30 s nats-server requires (it refuses to start)', () => {
    const duration = natsSeconds(natsConf, 'lame_duck_duration');
    if (duration !== undefined) expect(duration, 'lame_duck_duration (nats-server: "minimum is 30 seconds")').toBeGreaterThanOrEqual(30);
    const grace = natsSeconds(natsConf, 'lame_duck_grace_period');
    if (grace !== undefined && duration !== undefined) expect(grace, 'lame_duck_grace_period must be < lame_duck_duration').toBeLessThan(duration);
  });

  it('nats.conf is accepted by nats-server -t (when the binary is installed: .ci/setup-docker.sh)', async (ctx) => {
    const bin = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((p) => existsSync(p));
    if (!bin) return ctx.skip();
    const dir = mkdtempSync(join(tmpdir(), 'nats-conf-'));
    try {
      const file = join(dir, 'nats.conf');
      writeFileSync(file, natsConf);
      const pod = natsContainer.env.find((e: any) => e.name === 'POD_NAME') ? { POD_NAME: 'nats-0' } : {};
      const result = await run(bin, ['-t', '-c', file], { env: { ...process.env, ...pod } }).then(
        (r) => ({ ok: true, out: r.stdout + r.stderr }),
        (e: { stdout?: string; stderr?: string }) => ({ ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
      );
      expect(result.ok, result.out).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a stopping NATS pod enters lame duck mode (SIGTERM alone makes nats-server exit at once) within its grace period', () => {
    const duration = natsSeconds(natsConf, 'lame_duck_duration');
    if (duration === undefined) return; // no lame duck configured: nothing to honour
    const command: string[] = natsContainer.lifecycle?.preStop?.exec?.command ?? [];
    // nats-server --signal ldm=<pid>: the server is PID 1 of its container (no shell in the image).
    expect(command.join(' '), 'preStop must signal lame duck mode (nats-server --signal ldm=1)').toMatch(/nats-server\s+(--signal|-sl)[ =]ldm=1\b/);
    expect(natsPod.terminationGracePeriodSeconds, 'terminationGracePeriodSeconds vs lame_duck_duration').toBeGreaterThan(duration + 5);
  });

  it('3 servers, routes to each by stable name, JetStream on a PersistentVolumeClaim, R3 asked by the nodes', () => {
    expect(natsSts.spec.replicas).toBe(3);
    expect(natsSts.spec.serviceName).toBe('nats-headless');
    const routes = [...natsConf.matchAll(/nats:\/\/(nats-\d+)\.nats-headless:6222/g)].map((m) => m[1]);
    expect(routes).toEqual(['nats-0', 'nats-1', 'nats-2']);
    expect(natsConf).toMatch(/server_name:\s*\$POD_NAME/);
    expect(natsConf).toMatch(/store_dir:\s*\/data/);
    expect(natsContainer.volumeMounts).toContainEqual({ name: 'data', mountPath: '/data' });
    expect(natsSts.spec.volumeClaimTemplates.map((v: any) => v.metadata.name)).toContain('data');
    expect(secret.stringData?.PRESENCE_NATS_REPLICAS).toBe(String(natsSts.spec.replicas));
    const urls = secret.stringData!.PRESENCE_NATS!.split(',');
    expect(urls).toEqual(routes.map((r) => `nats://${r}.nats-headless:4222`));
    const headless = k8sObj('Service', 'nats-headless');
    expect(headless.spec.clusterIP).toBe('None');
    expect(headless.spec.publishNotReadyAddresses).toBe(true);
    expect(k8sObj('PodDisruptionBudget', 'nats').spec.maxUnavailable).toBe(1);
  });
});

// ---- the presence nodes on Kubernetes -------------------------------------------------------

describe('deploy/k8s/presence.yaml: the nodes', () => {
  it('a Deployment scaled by an HPA leaves spec.replicas out (every kubectl apply would reset the HPA\'s count)', () => {
    const hpas = k8s.filter((o) => o.kind === 'HorizontalPodAutoscaler' && o.spec.scaleTargetRef.kind === 'Deployment' && o.spec.scaleTargetRef.name === 'presence');
    expect(hpas).toHaveLength(1);
    expect(presenceDeploy.spec.replicas, 'Deployment/presence spec.replicas with an HPA').toBeUndefined();
    expect(hpas[0]!.spec.minReplicas).toBeGreaterThanOrEqual(3);
  });

  it('terminationGracePeriodSeconds covers preStop + the worst socket close + the shard hand-over', () => {
    const needed = preStopSeconds(presenceContainer) + wsCloseTimeoutSeconds() + HANDOVER_MARGIN_S;
    expect(presencePod.terminationGracePeriodSeconds, `at least ${needed} s`).toBeGreaterThanOrEqual(needed);
  });

  it('probes: readiness /readyz, liveness and startup /healthz, on the port the node listens on', () => {
    const port = presenceContainer.ports.find((p: any) => p.name === 'http');
    const env = Object.fromEntries(presenceContainer.env.filter((e: any) => 'value' in e).map((e: any) => [e.name, e.value]));
    expect(port.containerPort).toBe(Number(env.PRESENCE_PORT ?? 8080));
    expect(presenceContainer.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(presenceContainer.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(presenceContainer.startupProbe.httpGet.path).toBe('/healthz');
    const svc = k8sObj('Service', 'presence');
    expect(svc.spec.ports).toContainEqual(expect.objectContaining({ targetPort: 'http' }));
  });

  it('node id = pod name (unique per pod; the code needs distinct ids, not stable ones: a new incarnation at every start)', () => {
    const id = presenceContainer.env.find((e: any) => e.name === 'PRESENCE_NODE_ID');
    expect(id.valueFrom.fieldRef.fieldPath).toBe('metadata.name');
    // A Deployment's pod names: <name>-<hash up to 10>-<5>; src/config.ts accepts [A-Za-z0-9_-]{1,64}.
    expect(`${presenceDeploy.metadata.name}-5d8f7c9b6f-abcde`).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
  });

  it('admin key, NATS URLs and replicas from the Secret; every PRESENCE_* set is one src/config.ts reads', () => {
    expect(presenceContainer.envFrom).toContainEqual({ secretRef: { name: 'presence-env' } });
    expect(Object.keys(secret.stringData!).sort()).toEqual(['PRESENCE_ADMIN_KEY', 'PRESENCE_NATS', 'PRESENCE_NATS_REPLICAS']);
    const names = [...Object.keys(secret.stringData!), ...presenceContainer.env.map((e: any) => e.name)];
    for (const name of names) expect(configVars, name).toContain(name);
  });

  it('non-root, resources requested, spread over hosts, a PodDisruptionBudget', () => {
    expect(presencePod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(presenceContainer.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(presencePod.topologySpreadConstraints ?? presencePod.affinity).toBeTruthy();
    expect(k8sObj('PodDisruptionBudget', 'presence').spec.maxUnavailable).toBe(1);
  });
});

// ---- compose and the image -----------------------------------------------------------------

describe('deploy/compose.yaml and deploy/Dockerfile', () => {
  it('stop_grace_period of every node covers the worst socket close + the shard hand-over', () => {
    const needed = wsCloseTimeoutSeconds() + HANDOVER_MARGIN_S;
    for (const name of nodeServices) expect(composeSeconds(services[name]!.stop_grace_period), `${name}: at least ${needed} s`).toBeGreaterThanOrEqual(needed);
  });

  it('3 routed JetStream servers with persistent volumes; nodes ask R3 and list every server', () => {
    expect(natsServices).toHaveLength(3);
    for (const name of natsServices) {
      const args: string[] = services[name]!.command;
      expect(args).toContain('-js');
      expect(args[args.indexOf('--server_name') + 1]).toBe(name);
      expect(args[args.indexOf('--cluster_name') + 1]).toBe('presence');
      expect(args[args.indexOf('--routes') + 1]!.split(',').sort()).toEqual(natsServices.map((n) => `nats://${n}:6222`).sort());
      const store = args[args.indexOf('-sd') + 1];
      expect(services[name]!.volumes).toContain(`${name}:${store}`);
      expect(services[name]!.restart).toBe('unless-stopped');
    }
    for (const name of nodeServices) {
      const env = services[name]!.environment;
      expect(env.PRESENCE_NATS_REPLICAS).toBe(String(natsServices.length));
      expect(env.PRESENCE_NATS.split(',').sort()).toEqual(natsServices.map((n) => `nats://${n}:4222`).sort());
      expect(env.PRESENCE_NODE_ID).toBe(name);
      for (const key of Object.keys(env)) expect(configVars, `${name}: ${key}`).toContain(key);
      expect(services[name]!.restart).toBe('unless-stopped');
    }
    expect(new Set(nodeServices.map((n) => services[n]!.environment.PRESENCE_NODE_ID)).size).toBe(nodeServices.length);
  });

  it('the LB publishes 8080 and balances over every node on the port they listen on', () => {
    const lb = services.lb!;
    expect(interpolate(lb.ports[0], {}, 'lb')).toBe('8080:8080');
    expect(lb.environment.LB_BACKENDS.split(',').sort()).toEqual(nodeServices.map((n) => `${n}:8080`).sort());
  });

  it('the image: non-root, HEALTHCHECK on /healthz at the node port', () => {
    expect(dockerfile).toMatch(/^USER 1000:1000$/m);
    expect(dockerfile).toMatch(/^EXPOSE 8080$/m);
    expect(dockerfile).toMatch(/HEALTHCHECK[\s\S]*PRESENCE_PORT\|\|8080\)\+'\/healthz'/);
  });
});
