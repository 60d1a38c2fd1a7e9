/**
 * Values gathered per key during one event-loop tick and handed over together when
 * the tick ends: whatever a burst produces in one turn costs one send per key, and a
 * lone change waits no longer than the turn it was made in.
 */
export class TickBatch<K, V> {
  private pending = new Map<K, V[]>();
  private scheduled = false;

  constructor(private readonly send: (batch: Map<K, V[]>) => void) {}

  add(key: K, value: V): void {
    const list = this.pending.get(key);
    if (list) list.push(value);
    else this.pending.set(key, [value]);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Takes a key's values out of the batch, to be handed over now by the caller. */
  take(key: K): V[] | undefined {
    const list = this.pending.get(key);
    this.pending.delete(key);
    return list;
  }

  /** Hands over what is pending now, without waiting for the end of the tick. */
  flush(): void {
    this.scheduled = false;
    if (!this.pending.size) return;
    const batch = this.pending;
    this.pending = new Map();
    this.send(batch);
  }
}
