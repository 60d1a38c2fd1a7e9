import { randomBytes } from 'node:crypto';
import { genUserSig } from '../auth/index.js';
import { PresenceNode } from '../cluster/node.js';
import { NatsTransport } from '../cluster/transport/nats.js';
import { withDefaultLimits, type AppConfig } from '../cluster/stores/apps.js';
import { loadConfig, type ConfigFlags } from '../config.js';
import { createLogger } from '../log.js';

/** The development app `npm start` creates when no app is configured (SPEC.md §5). */
export const DEV_SDKAPPID = 1400000001;

export async function runStart(flags: ConfigFlags): Promise<number> {
  const config = loadConfig(flags);
  const log = createLogger({ level: config.logLevel, ...(config.nodeId ? { nodeId: config.nodeId } : {}) });
  const transport = config.nats
    ? await NatsTransport.connect({
        servers: config.nats,
        ...(config.nodeId ? { name: config.nodeId } : {}),
        ...(config.natsReplicas ? { replicas: config.natsReplicas } : {}),
        log,
      })
    : undefined;
  const devApp: AppConfig | undefined = config.apps.length
    ? undefined
    : {
        sdkAppID: DEV_SDKAPPID,
        secretKey: randomBytes(32).toString('hex'),
        edition: 'premium',
        userStatusEnabled: true,
        friendStatusAutoNotify: true,
        limits: withDefaultLimits(undefined),
      };
  const node = new PresenceNode({
    port: config.port,
    host: config.host,
    ...(config.nodeId ? { nodeId: config.nodeId } : {}),
    ...(config.adminKey ? { adminKey: config.adminKey } : {}),
    apps: config.apps,
    ...(devApp ? { defaultApp: devApp } : {}),
    ...(transport ? { transport, cluster: { minView: config.minView } } : {}),
    log,
  });
  const port = await node.start();
  const base = `http://localhost:${port}`;
  const lines = [
    `presence-cluster node ${node.nodeId} on the ${node.transport.kind} transport`,
    `  devices:  ws://localhost:${port}/ws`,
    `  admin:    ${base}/admin   (Authorization: Bearer ${config.adminKey ? '<PRESENCE_ADMIN_KEY>' : node.adminKey})`,
    `  health:   ${base}/healthz  ${base}/readyz`,
  ];
  if (devApp && node.createdDefaultApp) {
    lines.push(
      `  dev app:  sdkAppID ${devApp.sdkAppID}, secret ${devApp.secretKey}`,
      `  UserSig for 'alice': ${genUserSig({ sdkAppID: devApp.sdkAppID, secretKey: devApp.secretKey, userID: 'alice' })}`,
      `  more:     npx presence usersig --app ${devApp.sdkAppID} --secret ${devApp.secretKey} --user bob`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);

  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      node.log.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
  await node.stop();
  return 0;
}
