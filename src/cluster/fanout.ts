import type { Device, UserStatus } from '../actors/types.js';
import { decode } from './codec.js';
import type { StatusEvent } from './commands.js';
import type { DeliveryBatcher } from './delivery.js';
import { subjects, userKey, userKeyOfStatus } from './subjects.js';
import type { Subscription, Transport } from './transport/types.js';
import { Watchers } from './watchers.js';

interface Interest {
  watchers: Watchers<string>;
  /** The newest version seen, so a late or repeated event is never delivered. */
  version: number;
}

interface AppInterest {
  subscription: Subscription;
  /** Watched users of the app on this node. */
  watched: number;
}

/**
 * Status fan-out on one node: one transport subscription per app that has a watcher
 * here, and local dispatch to each watcher's devices. A subscription per watched user
 * cost each node one (nats.js) subscription object per user it watched, and a SUB and
 * an UNSUB to the NATS server each time the first watcher came and the last one left;
 * with watchers spread over the nodes, a node hears nearly every change of the app
 * anyway. Changes of users nobody here watches are dropped on arrival, by subject,
 * without decoding them. A watcher follows its subscriptions (and friends) only while
 * it has a device connected; when it comes back it re-reads what it follows, so
 * nothing is missed.
 */
export class FanOut {
  private readonly interests = new Map<string, Interest>();
  private readonly apps = new Map<number, AppInterest>();

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
    for (const target of previous) if (!next.has(target)) this.release(sdkAppID, userKey(sdkAppID, target), watcherKey);
    for (const target of next) if (!previous.has(target)) this.acquire(sdkAppID, userKey(sdkAppID, target), watcherKey);
  }

  /** Number of watched users on this node. */
  get interestCount(): number {
    return this.interests.size;
  }

  close(): void {
    for (const app of this.apps.values()) app.subscription.unsubscribe();
    this.apps.clear();
    this.interests.clear();
  }

  private acquire(sdkAppID: number, targetKey: string, watcherKey: string): void {
    let interest = this.interests.get(targetKey);
    if (!interest) {
      this.interests.set(targetKey, (interest = { watchers: new Watchers(), version: 0 }));
      this.watchApp(sdkAppID);
    }
    interest.watchers.add(watcherKey);
  }

  private release(sdkAppID: number, targetKey: string, watcherKey: string): void {
    const interest = this.interests.get(targetKey);
    if (!interest) return;
    interest.watchers.delete(watcherKey);
    if (interest.watchers.size === 0) {
      this.interests.delete(targetKey);
      this.unwatchApp(sdkAppID);
    }
  }

  private watchApp(sdkAppID: number): void {
    const app = this.apps.get(sdkAppID);
    if (app) {
      app.watched++;
      return;
    }
    const subscription = this.transport.subscribe(subjects.appStatuses(sdkAppID), (data, subject) => this.receive(data, subject));
    this.apps.set(sdkAppID, { subscription, watched: 1 });
  }

  private unwatchApp(sdkAppID: number): void {
    const app = this.apps.get(sdkAppID);
    if (!app || --app.watched > 0) return;
    app.subscription.unsubscribe();
    this.apps.delete(sdkAppID);
  }

  private receive(data: Uint8Array, subject: string): void {
    const interest = this.interests.get(userKeyOfStatus(subject));
    if (!interest) return;
    const event = decode<StatusEvent>(data);
    if (this.dispatch(interest, event.status)) this.observeLatency(Math.max(0, Date.now() - event.at) / 1000);
  }

  /** Sends a newer status to the watchers' devices; false for a stale or repeated one. */
  private dispatch(interest: Interest, status: UserStatus): boolean {
    if (status.version <= interest.version) return false;
    interest.version = status.version;
    for (const watcher of interest.watchers) {
      for (const device of this.devicesOf(watcher) ?? []) this.delivery.push(device.gatewayId, device.connId, status);
    }
    return true;
  }
}
