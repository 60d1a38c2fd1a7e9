import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/** Structured JSON logs; `PRESENCE_LOG_LEVEL` (or the config) sets the level. */
export function createLogger(options: { level?: string; nodeId?: string } = {}): Logger {
  return pino({
    level: options.level ?? process.env.PRESENCE_LOG_LEVEL ?? 'info',
    base: options.nodeId ? { node: options.nodeId } : {},
  });
}
