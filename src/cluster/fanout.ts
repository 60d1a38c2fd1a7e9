import type { Device, UserStatus } from '../actors/types.js';
import { decode } from './codec.js';
import type { StatusEvent } from './commands.js';
import type { DeliveryBatcher } from './delivery.js';
import { subjects, userKey } from './subjects.js';
import type { Subscription, Transport } from './transport/types.js';
import { Watchers } from './watchers.js';

interface Interest {
  subscription: Subscription;
  watchers: Watchers<string>;
  /** The newest version seen, so a late or repeated event is never delivered. */
  version: number;
}

/**
 * Status fan-out on one node: one transport subscription per watched user, however
 * many resident watchers follow it, and local dispatch to each watcher's devices.
 * A watcher follows its subscriptions (and friends) only while it has a device
 * connected; when it comes back it re-reads what it follows, so nothing is missed.
 */
export class FanOut {
  private readonly interests = new Map<string, Interest>();

  constructor(
    private readonly transport: Transport,
    private readonly delivery: DeliveryBatcher,
    private readonly devicesOf: (watcherKey: string) => Iterable<Device> | undefined,
    /** Seconds from the owner's publish to this dispatch (wall clocks of two nodes: skew shows). */
    private readonly observeLatency: (seconds: number) => void = () => undefined,
  ) {}

  /**
   * Moves `watcherKey` from following `previous` to following `next` (userIDs of one app).
   * The caller keeps what a watcher follows (the actor's own subscription list does), so
   * this node does not hold a second copy of every list.
   */
  follow(watcherKey: string, sdkAppID: number, previous: ReadonlySet<string>, next: ReadonlySet<string>): void {
    for (const target of previous) if (!next.has(target)) this.release(userKey(sdkAppID, target), watcherKey);
    for (const target of next) if (!previous.has(target)) this.acquire(userKey(sdkAppID, target), sdkAppID, target, watcherKey);
  }

  /** Number of watched users this node holds a subscription for. */
  get interestCount(): number {
    return this.interests.size;
  }

  close(): void {
    for (const interest of this.interests.values()) interest.subscription.unsubscribe();
    this.interests.clear();
  }

  private acquire(targetKey: string, sdkAppID: number, target: string, watcherKey: string): void {
    let interest = this.interests.get(targetKey);
    if (!interest) {
      const subscription = this.transport.subscribe(subjects.userStatus(sdkAppID, target), (data) => {
        const event = decode<StatusEvent>(data);
        if (this.dispatch(targetKey, event.status)) this.observeLatency(Math.max(0, Date.now() - event.at) / 1000);
      });
      this.interests.set(targetKey, (interest = { subscription, watchers: new Watchers(), version: 0 }));
    }
    interest.watchers.add(watcherKey);
  }

  private release(targetKey: string, watcherKey: string): void {
    const interest = this.interests.get(targetKey);
    if (!interest) return;
    interest.watchers.delete(watcherKey);
    if (interest.watchers.size === 0) {
      interest.subscription.unsubscribe();
      this.interests.delete(targetKey);
    }
  }

  /** Sends a newer status to the watchers' devices; false for a stale or repeated one. */
  private dispatch(targetKey: string, status: UserStatus): boolean {
    const interest = this.interests.get(targetKey);
    if (!interest || status.version <= interest.version) return false;
    interest.version = status.version;
    for (const watcher of interest.watchers) {
      for (const device of this.devicesOf(watcher) ?? []) this.delivery.push(device.gatewayId, device.connId, status);
    }
    return true;
  }
}
