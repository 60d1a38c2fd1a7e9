import { KvConflictError } from './errors.js';
import { subjectMatches } from './subjectMatch.js';
import type { KvBucket, KvEntry, KvOptions, KvWatchEvent, Subscription } from './types.js';

interface Stored {
  value: Uint8Array;
  revision: number;
  writtenAt: number;
}

/**
 * An in-process bucket with the semantics the nodes rely on from JetStream KV:
 * one revision counter per bucket, compare-and-set on create/update/delete, watch
 * of later changes, and a bucket-wide TTL.
 */
export class MemoryKvBucket implements KvBucket {
  private readonly entries = new Map<string, Stored>();
  private readonly watchers = new Set<(event: KvWatchEvent) => void>();
  private revision = 0;

  constructor(readonly name: string, private readonly options: KvOptions = {}, private readonly now: () => number = Date.now) {}

  async get(key: string): Promise<KvEntry | null> {
    const stored = this.live(key);
    return stored ? { key, value: stored.value, revision: stored.revision } : null;
  }

  async put(key: string, value: Uint8Array): Promise<number> {
    return this.write(key, value);
  }

  async create(key: string, value: Uint8Array): Promise<number> {
    if (this.live(key)) throw new KvConflictError(this.name, key, 'absent');
    return this.write(key, value);
  }

  async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    if (this.live(key)?.revision !== revision) throw new KvConflictError(this.name, key, revision);
    return this.write(key, value);
  }

  async delete(key: string, revision?: number): Promise<void> {
    const stored = this.live(key);
    if (revision !== undefined && stored?.revision !== revision) throw new KvConflictError(this.name, key, revision);
    if (!stored) return;
    this.entries.delete(key);
    this.notify({ op: 'delete', key, revision: ++this.revision });
  }

  async erase(key: string, revision?: number): Promise<void> {
    if (revision === undefined || this.live(key)?.revision === revision) this.entries.delete(key);
  }

  async keys(filter?: string): Promise<string[]> {
    return [...this.entries.keys()].filter((key) => this.live(key) && (filter === undefined || subjectMatches(filter, key)));
  }

  async watch(handler: (event: KvWatchEvent) => void): Promise<Subscription> {
    this.watchers.add(handler);
    return { unsubscribe: () => this.watchers.delete(handler) };
  }

  private write(key: string, value: Uint8Array): number {
    const revision = ++this.revision;
    // A copy, not `value.slice()`: on a Buffer that is a view, and msgpackr's views share one
    // large buffer, so every stored value kept all of it alive (about 4 KiB per online user).
    this.entries.set(key, { value: new Uint8Array(value), revision, writtenAt: this.now() });
    this.notify({ op: 'put', entry: { key, value, revision } });
    return revision;
  }

  /** Expired entries vanish silently, as a JetStream bucket TTL does (no watch event). */
  private live(key: string): Stored | undefined {
    const stored = this.entries.get(key);
    if (stored && this.options.ttlMs !== undefined && this.now() - stored.writtenAt >= this.options.ttlMs) {
      this.entries.delete(key);
      return undefined;
    }
    return stored;
  }

  private notify(event: KvWatchEvent): void {
    for (const watcher of this.watchers) queueMicrotask(() => watcher(event));
  }
}
