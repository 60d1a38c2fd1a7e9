import type { AppLimits, AppPolicy, Edition } from '../../actors/types.js';
import { DEFAULT_LIMITS } from '../../actors/types.js';
import { decode, encode } from '../codec.js';
import { appKey } from '../subjects.js';
import { KvConflictError } from '../transport/errors.js';
import type { KvBucket, Subscription } from '../transport/types.js';

/** One tenant, as stored in the `apps` bucket and set with `PUT /admin/apps/:sdkAppID`. */
export interface AppConfig {
  sdkAppID: number;
  secretKey: string;
  edition: Edition;
  userStatusEnabled: boolean;
  friendStatusAutoNotify: boolean;
  limits: AppLimits;
  /** Where status changes are POSTed as `State.StateChange` webhooks; none when absent. */
  callbackUrl?: string;
}

export const policyOf = (app: AppConfig): AppPolicy => ({
  edition: app.edition,
  userStatusEnabled: app.userStatusEnabled,
  friendStatusAutoNotify: app.friendStatusAutoNotify,
  limits: app.limits,
});

export const withDefaultLimits = (limits: Partial<AppLimits> | undefined): AppLimits => ({
  ...DEFAULT_LIMITS,
  ...limits,
  rateLimit: { ...DEFAULT_LIMITS.rateLimit, ...limits?.rateLimit },
});

/**
 * Every app, read from the `apps` bucket once and then kept current by a watch, so
 * each request looks its app up without I/O. Writes go to the bucket; every node,
 * this one included, learns of them through the watch.
 */
export class AppRegistry {
  private readonly apps = new Map<number, AppConfig>();
  private watch: Subscription | undefined;
  /** Revision of the latest watch event of each app, so a write's own answer never undoes a later one. */
  private readonly heard = new Map<number, number>();
  /**
   * Apps the watch has told of while the start-up listing runs: the watch is newer, so the
   * listing's (earlier) read of them must not overwrite it, nor bring a deleted one back.
   */
  private reported: Set<number> | undefined;
  private readonly listeners = new Set<(app: AppConfig) => void>();

  constructor(private readonly bucket: KvBucket) {}

  async start(): Promise<void> {
    this.reported = new Set();
    this.watch = await this.bucket.watch((event) => {
      const sdkAppID = Number(event.op === 'put' ? event.entry.key : event.key);
      this.reported?.add(sdkAppID);
      this.heard.set(sdkAppID, event.op === 'put' ? event.entry.revision : event.revision);
      if (event.op === 'put') this.remember(decode<AppConfig>(event.entry.value));
      else this.apps.delete(sdkAppID);
    });
    for (const key of await this.bucket.keys()) {
      const entry = await this.bucket.get(key);
      if (entry && !this.reported.has(Number(key))) this.remember(decode<AppConfig>(entry.value));
    }
    this.reported = undefined;
  }

  stop(): void {
    this.watch?.unsubscribe();
  }

  get(sdkAppID: number): AppConfig | undefined {
    return this.apps.get(sdkAppID);
  }

  list(): AppConfig[] {
    return [...this.apps.values()];
  }

  /** Stores the app and resolves once this node's view has it too. */
  async put(app: AppConfig): Promise<AppConfig> {
    this.rememberWritten(app, await this.bucket.put(appKey(app.sdkAppID), encode(app)));
    return app;
  }

  /** Stores the app only if no app has that sdkAppID yet, on any node; true if this call created it. */
  async create(app: AppConfig): Promise<boolean> {
    let revision: number;
    try {
      revision = await this.bucket.create(appKey(app.sdkAppID), encode(app));
    } catch (error) {
      if (error instanceof KvConflictError) return false;
      throw error;
    }
    this.rememberWritten(app, revision);
    return true;
  }

  onChange(listener: (app: AppConfig) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A write of this node at `revision`, unless the watch has brought a later one already. */
  private rememberWritten(app: AppConfig, revision: number): void {
    if ((this.heard.get(app.sdkAppID) ?? 0) <= revision) this.remember(app);
  }

  private remember(app: AppConfig): void {
    this.apps.set(app.sdkAppID, app);
    for (const listener of this.listeners) listener(app);
  }
}
