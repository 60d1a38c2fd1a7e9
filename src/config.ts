import { readFileSync } from 'node:fs';
import { parseAppBody } from './admin/appInput.js';
import type { AppConfig } from './cluster/stores/apps.js';

/** What `presence start` runs with, merged from flags, then `PRESENCE_*` variables, then a JSON file. */
export interface NodeConfig {
  port: number;
  host: string;
  nats?: string[];
  /** Replicas of the KV buckets on NATS; default 1 (set 3 on a 3-server JetStream cluster, as deploy/ does). */
  natsReplicas?: number;
  /** No shard is claimed while fewer nodes are in view. */
  minView: number;
  nodeId?: string;
  adminKey?: string;
  logLevel: string;
  apps: AppConfig[];
}

export interface ConfigFlags {
  port?: string;
  host?: string;
  nats?: string;
  nodeId?: string;
  config?: string;
}

interface ConfigFile {
  port?: number;
  host?: string;
  nats?: string | string[];
  natsReplicas?: number;
  minView?: number;
  nodeId?: string;
  adminKey?: string;
  logLevel?: string;
  apps?: Array<Record<string, unknown> & { sdkAppID: number }>;
}

export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

export function loadConfig(flags: ConfigFlags, env: NodeJS.ProcessEnv = process.env): NodeConfig {
  const path = flags.config ?? env.PRESENCE_CONFIG;
  const file = path ? readConfigFile(path) : {};
  const rawPort = flags.port ?? env.PRESENCE_PORT ?? file.port ?? 8080;
  const port = Number(rawPort);
  // Number('') is 0, a random port: an empty PRESENCE_PORT must not quietly move the node.
  if (!/^\d+$/.test(String(rawPort)) || port > 65535) throw new ConfigError(`port must be 0-65535, got ${JSON.stringify(rawPort)}`);
  const nats = flags.nats ?? env.PRESENCE_NATS ?? file.nats;
  const config: NodeConfig = {
    port,
    host: flags.host ?? env.PRESENCE_HOST ?? file.host ?? '0.0.0.0',
    logLevel: env.PRESENCE_LOG_LEVEL ?? file.logLevel ?? 'info',
    minView: positive('min view', env.PRESENCE_MIN_VIEW ?? file.minView ?? 1),
    apps: (file.apps ?? []).map((app, i) => {
      try {
        return parseAppBody(app.sdkAppID, app, undefined);
      } catch (error) {
        throw new ConfigError(`apps[${i}] in ${path}: ${(error as Error).message}`, { cause: error });
      }
    }),
  };
  if (nats) config.nats = (Array.isArray(nats) ? nats : nats.split(',')).map((url) => url.trim()).filter(Boolean);
  const replicas = env.PRESENCE_NATS_REPLICAS ?? file.natsReplicas;
  if (replicas !== undefined) config.natsReplicas = positive('NATS replicas', replicas);
  const nodeId = flags.nodeId ?? env.PRESENCE_NODE_ID ?? file.nodeId;
  if (nodeId !== undefined) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(nodeId)) throw new ConfigError(`node id must be 1-64 characters of [A-Za-z0-9_-], got ${nodeId}`);
    config.nodeId = nodeId;
  }
  const adminKey = env.PRESENCE_ADMIN_KEY ?? file.adminKey;
  if (adminKey !== undefined) config.adminKey = adminKey;
  return config;
}

function positive(what: string, value: string | number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${what} must be a positive integer, got ${value}`);
  return n;
}

function readConfigFile(path: string): ConfigFile {
  let file: unknown;
  try {
    file = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`cannot read the config file ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (typeof file !== 'object' || file === null || Array.isArray(file)) throw new ConfigError(`the config file ${path} must hold a JSON object`);
  const fields = file as Record<string, unknown>;
  if (fields.apps !== undefined && !Array.isArray(fields.apps)) throw new ConfigError(`apps in ${path} must be an array of apps`);
  const { nats } = fields;
  if (nats !== undefined && typeof nats !== 'string' && !(Array.isArray(nats) && nats.every((url) => typeof url === 'string'))) {
    throw new ConfigError(`nats in ${path} must be a URL string or an array of them`);
  }
  return file as ConfigFile;
}
