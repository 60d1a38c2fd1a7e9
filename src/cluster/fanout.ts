import type { Device, UserStatus } from '../actors/types.js';
import { decode } from './codec.js';
import type { StatusChanges } from './commands.js';
import type { DeliveryBatcher } from './delivery.js';
import { subjects } from './subjects.js';
import type { Subscription, Transport } from './transport/types.js';
import { Watchers } from './watchers.js';

interface Interest<W> {
  /** The watched user's ID, the one copy of it that the lists naming it share. */
  userID: string;
  watchers: Watchers<W>;
  /** The newest version seen, so a late or repeated change is never delivered. */
  version: number;
}

/** A target of subscribe calls running on this node that nobody here watches yet. */
interface Arriving {
  userID: string;
  calls: number;
}

interface AppInterest<W> {
  subscription: Subscription;
  /** Watched users of the app on this node, by userID. */
  users: Map<string, Interest<W>>;
}

/**
 * Status fan-out on one node: one transport subscription per app that has a watcher
 * here, and local dispatch to each watcher's devices. With watchers spread over the
 * nodes, a node hears nearly every change of the app anyway; a subscription per
 * watched user cost each node a (nats.js) subscription object per user it watched,
 * and a SUB and an UNSUB to the NATS server each time the first watcher came and the
 * last one left. Owners batch their changes per tick (`StatusBatcher`); the changes
 * of users nobody here watches are skipped. A watcher follows its subscriptions (and
 * friends) only while it has a device connected; when it comes back it re-reads what
 * it follows, so nothing is missed.
 *
 * A watcher `W` is whatever the caller holds for a user that watches: the shard host
 * passes its resident record itself, so a dispatch reaches the devices without looking
 * each watcher up (a Map lookup by key per notification was ~4 % of an embedded node's
 * burst). The caller takes a watcher out (`follow` to nobody) before it lets go of it.
 */
export class FanOut<W = string> {
  private readonly apps = new Map<number, AppInterest<W>>();
  private readonly arriving = new Map<number, Map<string, Arriving>>();
  private watchedUsers = 0;

  constructor(
    private readonly transport: Transport,
    private readonly delivery: DeliveryBatcher,
    private readonly devicesOf: (watcher: W) => Iterable<Device>,
    /** Seconds from the owner's publish to this dispatch (wall clocks of two nodes: skew shows). */
    private readonly observeLatency: (seconds: number) => void = () => undefined,
  ) {}

  /**
   * Moves `watcher` from following `previous` to following `next` (userIDs of one app).
   * The caller keeps what a watcher follows (the actor's own subscription list does), so
   * this node does not hold a second copy of every list.
   */
  follow(watcher: W, sdkAppID: number, previous: ReadonlySet<string>, next: ReadonlySet<string>): void {
    // Taken before the old ones are let go: an app's only watcher moving to other users keeps
    // the app's subscription rather than ending it and making a new one.
    for (const target of next) if (!previous.has(target)) this.acquire(sdkAppID, target, watcher);
    for (const target of previous) if (!next.has(target)) this.release(sdkAppID, target, watcher);
  }

  /**
   * A status read from the store for `devices` coming back (a reconnect, an actor restored here).
   * Newer than what this node last dispatched for the user, it goes to every watcher here and
   * becomes the version later changes must pass: this node forgot the user's version when its
   * last watcher here let go, and a late older change (from a previous owner) must not follow it.
   * Older than that version, it goes nowhere: no device may be pushed a status older than one this
   * node sent. Such a read was answered before the newer change passed here (and the devices, their
   * user watching by then, got that change), or came from a lagging read or a resident actor whose
   * shard moved on; this node does not hold the newer status to send instead.
   */
  offer(sdkAppID: number, status: UserStatus, devices: readonly Device[]): void {
    const interest = this.apps.get(sdkAppID)?.users.get(status.userID);
    if (interest && status.version > interest.version) this.dispatch(interest, status);
    else if (!interest || status.version === interest.version) {
      for (const device of devices) this.delivery.push(device.gatewayId, device.connId, status);
    }
  }

  /**
   * A subscribe call's targets as the strings this node already holds for them: a watched
   * user's own copy, or the copy another subscribe call still running here brought. A list
   * built from them shares those, where one decoded from the call would be a copy of its own
   * in each of the (up to hundreds of) lists naming the user. On NATS a list's interest is
   * taken only once its write is done, so calls running together would not find each other's
   * copies among the watched users. `release` ends the call's share, after its interest is taken.
   */
  shareTargets(sdkAppID: number, userIDs: readonly string[]): { userIDs: string[]; release(): void } {
    const watched = this.apps.get(sdkAppID)?.users;
    let arriving = this.arriving.get(sdkAppID);
    const counted: Arriving[] = [];
    const shared = userIDs.map((userID) => {
      const interest = watched?.get(userID);
      if (interest) return interest.userID;
      if (!arriving) this.arriving.set(sdkAppID, (arriving = new Map()));
      let entry = arriving.get(userID);
      if (!entry) arriving.set(userID, (entry = { userID, calls: 0 }));
      entry.calls++;
      counted.push(entry);
      return entry.userID;
    });
    const release = (): void => {
      const entries = this.arriving.get(sdkAppID);
      for (const entry of counted.splice(0)) {
        if (--entry.calls > 0 || !entries) continue;
        entries.delete(entry.userID);
        if (entries.size === 0) this.arriving.delete(sdkAppID);
      }
    };
    return { userIDs: shared, release };
  }

  /** Targets of subscribe calls running now, by app: at most the calls in flight times their targets. */
  get arrivingCount(): number {
    let count = 0;
    for (const entries of this.arriving.values()) count += entries.size;
    return count;
  }

  /** Number of watched users on this node. */
  get interestCount(): number {
    return this.watchedUsers;
  }

  close(): void {
    for (const app of this.apps.values()) app.subscription.unsubscribe();
    this.apps.clear();
    this.watchedUsers = 0;
  }

  private acquire(sdkAppID: number, userID: string, watcher: W): void {
    const app = this.apps.get(sdkAppID) ?? this.watchApp(sdkAppID);
    let interest = app.users.get(userID);
    if (!interest) {
      app.users.set(userID, (interest = { userID, watchers: new Watchers(), version: 0 }));
      this.watchedUsers++;
    }
    interest.watchers.add(watcher);
  }

  private release(sdkAppID: number, userID: string, watcher: W): void {
    const app = this.apps.get(sdkAppID);
    const interest = app?.users.get(userID);
    if (!app || !interest) return;
    interest.watchers.delete(watcher);
    if (interest.watchers.size > 0) return;
    app.users.delete(userID);
    this.watchedUsers--;
    if (app.users.size === 0) {
      app.subscription.unsubscribe();
      this.apps.delete(sdkAppID);
    }
  }

  private watchApp(sdkAppID: number): AppInterest<W> {
    const users = new Map<string, Interest<W>>();
    const subscription = this.transport.subscribe(subjects.statusChanges(sdkAppID), (data) => this.receive(users, data));
    const app = { subscription, users };
    this.apps.set(sdkAppID, app);
    return app;
  }

  private receive(users: Map<string, Interest<W>>, data: Uint8Array): void {
    const changes = decode<Partial<StatusChanges> | null>(data);
    // Only nodes publish here, but one malformed entry must not cost the rest of the batch.
    // A non-finite `at` would make the latency metric throw; a version that is no count
    // (Infinity, NaN) would stand as the user's newest and stop every later change.
    const at = changes?.at;
    if (!Array.isArray(changes?.statuses) || typeof at !== 'number' || !Number.isFinite(at)) return;
    let delivered = 0;
    for (const status of changes.statuses) {
      if (typeof status?.userID !== 'string' || !Number.isSafeInteger(status.version)) continue;
      const interest = users.get(status.userID);
      if (interest && this.dispatch(interest, status)) delivered++;
    }
    const seconds = Math.max(0, Date.now() - at) / 1000;
    for (let i = 0; i < delivered; i++) this.observeLatency(seconds);
  }

  /** Sends a newer status to the watchers' devices; false for a stale or repeated one. */
  private dispatch(interest: Interest<W>, status: UserStatus): boolean {
    if (status.version <= interest.version) return false;
    interest.version = status.version;
    for (const watcher of interest.watchers) {
      for (const device of this.devicesOf(watcher)) this.delivery.push(device.gatewayId, device.connId, status);
    }
    return true;
  }
}
