import { UserActor, timersOf, type ActorObserver, type Clock, type StepResult, type TimerClock, type Transition } from '../actors/index.js';
import type { Device, Platform, PresenceEvent, SubscriptionList, UserStatus } from '../actors/types.js';
import { ErrorCode } from '../errors.js';
import { transitionRecord } from '../inspection/transitionRecord.js';
import { inspectUser } from '../inspection/userInspection.js';
import { RateMeter } from '../inspection/rateMeter.js';
import { ReplyMemory } from './replyMemory.js';
import { RestoreQueue } from './restoreQueue.js';
import type { NodeMetrics } from '../metrics/nodeMetrics.js';
import { WebhookDispatcher, type PendingWebhook } from '../webhooks/dispatcher.js';
import { appendToOutbox } from '../webhooks/outbox.js';
import { callbackUrlFor, stateChangeEvent, type WebhookEvent } from '../webhooks/stateChange.js';
import type { Logger } from '../log.js';
import { decode, encode, ownString } from './codec.js';
import { REPLIES_KEPT_MS, type ShardCommand, type ShardReply } from './commands.js';
import type { DeliveryBatcher } from './delivery.js';
import type { FanOut } from './fanout.js';
import { policyOf, type AppConfig, type AppRegistry } from './stores/apps.js';
import type { FriendStore } from './stores/friends.js';
import { CorruptUserRecordError, type StoredActor, type UserStore } from './stores/users.js';
import { subjects, userFromToken, userKey } from './subjects.js';
import { KvConflictError } from './transport/errors.js';
import type { KvBucket, Subscription, Transport } from './transport/types.js';
import { shardOf } from './shards.js';
import { StatusBatcher } from './statusBatcher.js';
import { IDLE, runInOrder, type Serial } from '../serialQueue.js';


/** A user's actor while it is in memory on this node; also how the fan-out names the user as a watcher. */
export interface Resident extends Serial {
  actor: UserActor;
  sdkAppID: number;
  userID: string;
  shard: number;
  /** Whether the `active` index lists this actor (it has a device or a deadline pending). */
  indexed: boolean;
  /** Revision of its `active` entry if this node wrote it (not for an actor restored from the index). */
  indexRevision: number | undefined;
  /** Revision of the `users` key this actor last wrote or was loaded at (0: absent). */
  revision: number;
  /** Clock time of the last snapshot write, to persist heartbeats lazily. */
  persistedAt: number;
  /** Changed since its last snapshot write (only with `writeBehind`). */
  unwritten: boolean;
  friends: readonly string[];
  /** Commands and timer transitions of one user run one at a time, in order (`runInOrder`). */
  queue: Promise<unknown>;
  /** Clock time until which its transitions are published for a dashboard watching it. */
  inspectedUntil: number;
  /** Webhook events not yet taken by the app server, oldest first; durable with the snapshot. */
  outbox: readonly WebhookEvent[];
  /** What its fan-out interest was last computed from. */
  interest: InterestBasis | undefined;
  /**
   * Transitions the actor's own timers made that are not committed yet, oldest first. A
   * timer moves the actor at once, but its commit waits in the queue; any work that runs
   * on the actor first commits these, so no newer version is announced (or its webhook
   * queued) ahead of them.
   */
  timerTransitions: Transition[] | undefined;
}

interface InterestBasis {
  online: boolean;
  subscriptions: SubscriptionList;
  friends: readonly string[] | undefined;
}

const FOLLOWS_NOBODY: ReadonlySet<string> = new Set();

/** Whom a user follows: nobody while offline, else its subscriptions and (with the app's friend switch on) its friends. */
function followedBy(basis: InterestBasis | undefined): ReadonlySet<string> {
  if (!basis?.online) return FOLLOWS_NOBODY;
  const targets = new Set(basis.subscriptions.userIDs);
  for (const friend of basis.friends ?? []) targets.add(friend);
  return targets;
}

export interface ShardHostDeps {
  nodeId: string;
  transport: Transport;
  users: UserStore;
  friends: FriendStore;
  apps: AppRegistry;
  fanout: () => FanOut<Resident>;
  delivery: DeliveryBatcher;
  clock: Clock | TimerClock;
  log: Logger;
  /**
   * Index of actors with something pending (`<shard>.<user key>`), so that a node
   * taking a shard over restores exactly those. Absent on a single embedded node.
   */
  active?: KvBucket;
  /** Whether this node may serve `shard` right now (its lease holds); always on one node. */
  isServing?: (shard: number) => boolean;
  /** Whether other nodes may have taken over this node's shards (its lease lapsed in their eyes). */
  othersMayServe?: () => boolean;
  metrics?: NodeMetrics;
  /** Actors restored at once after a takeover (the rest wait their turn). Default 32. */
  restoreConcurrency?: number;
  /**
   * The `users` bucket is this node's alone and ends with its process (one node on the
   * in-process transport): a snapshot written at every change could never be read by
   * anyone but this node, so a resident's snapshot is written when it leaves memory.
   */
  writeBehind?: boolean;
}

/** The transient error a command gets when its actor could not be persisted. */
export class PersistenceError extends Error {
  constructor(readonly key: string, options?: ErrorOptions) {
    super(`could not persist the state of ${key}; the change was not applied`, options);
    this.name = 'PersistenceError';
  }
}

/** A user loaded for a shard that stopped being served here meanwhile (dropped or handed over). */
class ShardNotServedError extends Error {
  constructor(readonly shard: number) {
    super(`shard ${shard} is not served here`);
    this.name = 'ShardNotServedError';
  }
}

const REQUEST = 'request';
/** The empty list every resident without friends or pending webhooks shares (32 B each otherwise). */
const NONE: readonly never[] = Object.freeze([]);
const orNone = <T>(list: readonly T[]): readonly T[] => (list.length ? list : NONE);
const EMPTY = new Uint8Array(0);
/** A dashboard renews its watch well within this; a closed one stops costing anything soon after. */
const MAX_INSPECT_WATCH_MS = 60_000;
/** A friend list that could not be read is read again after this, doubling up to the cap. */
const FRIEND_RETRY_FIRST_MS = 1_000;
const FRIEND_RETRY_MAX_MS = 30_000;

/**
 * Runs the user actors of the shards this node owns: activates an actor from the
 * `users` bucket on its first command, writes every change back with
 * compare-and-set before announcing it (or, with `writeBehind`, when the actor leaves
 * memory), and passivates actors with nothing pending.
 */
export class ShardHost {
  private readonly residents = new Map<string, Resident>();
  private readonly activating = new Map<string, Promise<Resident>>();
  private readonly served = new Map<number, Subscription>();
  private activeListing: { step: number; keys: Promise<string[]> } | undefined;
  /** The latest `inspectedUntil` of any resident: until then some dashboard may watch one. */
  private watchedUntil = 0;
  /** Friend-list reads started, to number them; and the last one started for each user still reading. */
  private friendReadsStarted = 0;
  private readonly latestFriendRead = new Map<Resident, number>();
  /** Users whose friend list could not be read: the retry pending and its delay. */
  private readonly friendRetries = new Map<Resident, { timer: unknown; delayMs: number }>();
  /** For the host's own retries and watch ends, on the actors' timers. */
  private readonly timers: TimerClock;

  /** Transitions made by the actors here, for the dashboard's events per second. */
  readonly events: RateMeter;

  /** Sends the webhooks in the outboxes of the actors here. */
  readonly webhooks: WebhookDispatcher;
  private readonly restorer: RestoreQueue;
  private readonly statusChanges: StatusBatcher;
  /** Answers given to commands the router may repeat, so that a repeat does not run twice. */
  private readonly replies: ReplyMemory;

  constructor(private readonly deps: ShardHostDeps) {
    this.timers = timersOf(deps.clock);
    this.replies = new ReplyMemory(REPLIES_KEPT_MS, this.timers);
    this.statusChanges = new StatusBatcher(deps.transport);
    this.events = new RateMeter(() => deps.clock.now());
    this.restorer = new RestoreQueue((key) => this.restore(key), deps.log, deps.restoreConcurrency ?? 32);
    this.webhooks = new WebhookDispatcher({
      next: (key) => this.nextWebhook(key),
      delivered: (key, eventId) => this.webhookDelivered(key, eventId),
      log: deps.log,
      onResult: (result) => deps.metrics?.webhookDeliveries.inc({ result }),
    });
  }

  /** Starts answering `subjects.shardCommand(shard)` for each shard. */
  serve(shards: Iterable<number>): void {
    for (const shard of shards) this.serveShard(shard);
  }

  /**
   * ShardServer: serves a shard just claimed and restores its actors with something pending.
   * Resolves once the shard is served. The `active` listing starts now, within the claiming
   * step, but is not waited for: on NATS it can stall for as long as a KV call retries (12 s),
   * and the ownership step that claimed the shard waits for this, while no later step runs.
   * A shard that step found free only after its claim was refused (a dead node's claim that was
   * in fact deleted, its watch event still on the way), or the shards of a node dying
   * meanwhile, were then served by nobody for those 12 s, and a call for one of their users
   * failed with 6012 (test/unit/rolling-restart-race.test.ts).
   */
  async acquire(shard: number, step: number): Promise<void> {
    this.serveShard(shard);
    if (!this.deps.active) return;
    void this.activeKeys(step).then(
      (listed) => {
        // Handed on again before the listing answered: its next owner restores them.
        if (!this.served.has(shard)) return;
        const keys = listed.filter((key) => key.startsWith(`${shard}.`));
        this.restorer.add(keys);
        if (keys.length) this.deps.log.info({ shard, restoring: keys.length }, 'shard taken over');
      },
      () => undefined, // logged once for the step by activeKeys
    );
  }

  /** Actors of shards taken over that wait to be restored. */
  get pendingRestores(): number {
    return this.restorer.pending;
  }

  /**
   * The `active` index, listed once for all the shards claimed in one ownership
   * step: a node taking over hundreds of shards reads the index once, not per shard.
   */
  private activeKeys(step: number): Promise<string[]> {
    if (this.activeListing?.step !== step) {
      const keys = this.deps.active!.keys();
      keys.catch((error: unknown) => this.deps.log.error({ err: error, step }, 'actors of the shards taken over not listed; they load on demand'));
      this.activeListing = { step, keys };
    }
    return this.activeListing.keys;
  }

  /** ShardServer: hands a shard over; every actor of it is persisted before it stops. */
  async release(shard: number): Promise<void> {
    // Drained, not dropped: commands already on their way are answered (`moved`, as the
    // shard is no longer served here, so the router retries at the next owner).
    const subscription = this.detachServing(shard);
    // Taken now: a release cut loose by its step's bound may go on after a fence dropped these and
    // a later step served the shard again; the actors loaded since are that serving's, not ours.
    const leaving = [...this.residents.values()].filter((r) => r.shard === shard);
    await subscription?.drain?.();
    subscription?.unsubscribe();
    await Promise.allSettled(leaving.map((r) => r.queue));
    const still = leaving.filter((r) => this.residents.get(userKey(r.sdkAppID, r.userID)) === r);
    await this.writeUnwritten(still);
    for (const resident of still) this.unload(resident);
  }

  /** ShardServer: fenced; the actors may be stale, so they go without a write. */
  drop(shard: number): void {
    this.stopServing(shard);
    for (const resident of [...this.residents.values()]) if (resident.shard === shard) this.unload(resident);
  }

  get ownedShards(): number[] {
    return [...this.served.keys()].sort((a, b) => a - b);
  }

  get residentCount(): number {
    return this.residents.size;
  }

  get onlineCount(): number {
    let online = 0;
    for (const resident of this.residents.values()) if (resident.actor.state === 'online') online++;
    return online;
  }

  /** The resident actor of a user, for the fan-out and the dashboard. */
  resident(sdkAppID: number, userID: string): UserActor | undefined {
    return this.residents.get(userKey(sdkAppID, userID))?.actor;
  }

  devicesOf(resident: Resident): Device[] {
    return Object.values(resident.actor.context.devices);
  }

  /**
   * Runs a command on the user's actor, if this node serves the shard. Every node
   * subscribed to a shard's subject receives each command, and a subscription may outlive
   * the lease (a frozen node's does until it thaws), so a node that does not serve the
   * shard answers `moved` (the router retries) only while no other node can serve it yet;
   * after that it stays silent (`null`), so the owner's answer is the only one and no
   * command runs twice.
   */
  async handle(command: ShardCommand): Promise<ShardReply | null> {
    const shard = shardOf(command.app, command.user);
    if (!this.serves(shard)) return this.notServed(shard);
    const reply = await this.run(command);
    return 'moved' in reply && reply.moved ? this.notServed(shard) : reply;
  }

  private notServed(shard: number): ShardReply | null {
    return this.deps.othersMayServe?.() ? null : this.moved(shard);
  }

  private moved(shard: number): ShardReply {
    return { ok: false, moved: true, error: { code: ErrorCode.REQUEST_TIMEOUT, desc: `shard ${shard} is not served by ${this.deps.nodeId}` } };
  }

  /** Runs `command` here if this node serves its shard now; undefined if it does not. */
  handleHere(command: ShardCommand): Promise<ShardReply> | undefined {
    return this.serves(shardOf(command.app, command.user)) ? this.run(command) : undefined;
  }

  private serves(shard: number): boolean {
    return this.served.has(shard) && (this.deps.isServing?.(shard) ?? true);
  }

  /** Runs a command of a shard served here on the user's actor. */
  private async run(command: ShardCommand): Promise<ShardReply> {
    const app = this.deps.apps.get(command.app);
    if (!app) return refused(ErrorCode.UNKNOWN_SDKAPPID, `sdkAppID ${command.app} is not configured on this cluster`);
    try {
      if (command.op === 'inspect') return await this.withResident(app, command.user, (resident) => this.inspect(resident, app, command.watchMs ?? 0));
      return await this.withResident(app, command.user, (resident) => this.apply(resident, app, command));
    } catch (error) {
      if (error instanceof ShardNotServedError) return this.moved(error.shard);
      this.deps.log.error({ err: error, user: command.user, app: command.app, op: command.op }, 'command failed');
      return refused(ErrorCode.INTERNAL_ERROR, error instanceof PersistenceError ? error.message : 'internal error');
    }
  }

  /** Public statuses of many users: resident actors first, the stored snapshots for the rest. */
  async statuses(sdkAppID: number, userIDs: readonly string[]): Promise<UserStatus[]> {
    return Promise.all(
      userIDs.map((id) => this.resident(sdkAppID, id)?.status ?? this.deps.users.status(sdkAppID, id)),
    );
  }

  /** Re-reads the friend lists of users in memory, or being loaded, after an admin change. */
  async friendsChanged(sdkAppID: number, userIDs: readonly string[]): Promise<void> {
    const app = this.deps.apps.get(sdkAppID);
    if (!app) return;
    const loading: Array<Promise<void>> = [];
    for (const userID of userIDs) {
      const key = userKey(sdkAppID, userID);
      const resident = this.residents.get(key);
      const pending = resident ? undefined : this.activating.get(key);
      if (resident) await this.refreshFriends(resident, app);
      else if (pending) loading.push(this.refreshOnceLoaded(pending, app));
    }
    await Promise.all(loading);
  }

  /**
   * Applies a changed app configuration: the friend switch to watchers in memory or being loaded,
   * and a callback URL set again to the events that waited without one (nothing else would send
   * them before the user's next change).
   */
  appChanged(app: AppConfig): void {
    for (const resident of this.residents.values()) {
      if (resident.sdkAppID !== app.sdkAppID) continue;
      void this.refreshFriends(resident, app);
      if (app.callbackUrl && resident.outbox.length) this.webhooks.kick(userKey(app.sdkAppID, resident.userID));
    }
    for (const loading of this.activating.values()) void this.refreshOnceLoaded(loading, app);
  }

  /** Persists and stops every actor; the node is going away. */
  async stop(): Promise<void> {
    this.webhooks.stop();
    this.restorer.stop();
    for (const shard of [...this.served.keys()]) this.stopServing(shard);
    await Promise.allSettled([...this.residents.values()].map((r) => r.queue));
    await this.writeUnwritten([...this.residents.values()]);
    for (const resident of [...this.residents.values()]) this.unload(resident);
    this.statusChanges.flush();
    this.replies.stop();
  }

  /** Reads the actor for the dashboard, and keeps it resident and publishing while watched. */
  private async inspect(resident: Resident, app: AppConfig, watchMs: number): Promise<ShardReply> {
    const now = this.deps.clock.now();
    if (watchMs > 0) {
      resident.inspectedUntil = now + Math.min(watchMs, MAX_INSPECT_WATCH_MS);
      this.watchedUntil = Math.max(this.watchedUntil, resident.inspectedUntil);
      // A user kept here only for the watch may have nothing else coming to passivate it.
      this.timers.setTimeout(() => this.restAfterWatch(resident), resident.inspectedUntil - now + 1);
    }
    const { actor } = resident;
    const inspection = inspectUser(actor.context, actor.state, app.limits, now, true);
    if (app.callbackUrl || resident.outbox.length) {
      inspection.webhooks = { pending: resident.outbox.length, ...this.webhooks.stateOf(userKey(app.sdkAppID, resident.userID)) };
    }
    if (this.canRest(resident, now)) await this.passivate(resident);
    return { ok: true, inspection };
  }

  private restAfterWatch(resident: Resident): void {
    const key = userKey(resident.sdkAppID, resident.userID);
    if (this.residents.get(key) !== resident) return;
    runInOrder(resident, async () => {
      if (this.residents.get(key) === resident && this.canRest(resident, this.deps.clock.now())) await this.passivate(resident);
    }).catch((error: unknown) => this.deps.log.error({ err: error, user: resident.userID, app: resident.sdkAppID }, 'not passivated after its watch'));
  }

  private async apply(resident: Resident, app: AppConfig, command: Exclude<ShardCommand, { op: 'inspect' }>): Promise<ShardReply> {
    if (command.op !== 'kick' && command.alive && command.op !== 'heartbeat') {
      // Nothing public changes with it, and its context is persisted with the call's.
      resident.actor.step(toEvent({ op: 'heartbeat', app: command.app, user: command.user, deviceId: command.deviceId, connId: command.connId }, app));
    }
    let shared: ReturnType<FanOut['shareTargets']> | undefined;
    let stepped = command;
    if (command.op === 'subscribe') {
      shared = this.deps.fanout().shareTargets(command.app, command.userIDs);
      stepped = { ...command, userIDs: shared.userIDs };
    }
    let result: StepResult;
    try {
      result = resident.actor.step(toEvent(stepped, app));
      const replaced = command.op === 'login' && result.kicks.some((k) => k.code === ErrorCode.KICKED_BY_SAME_DEVICE);
      await this.commit(resident, app, result, command.op === 'heartbeat', replaced ? [command.platform] : []);
    } finally {
      // After the commit, which took the list's interest: later calls find the watched user's copy.
      shared?.release();
    }
    const reply = result.reply;
    if (reply && !reply.ok) return refused(reply.code, reply.desc, reply.retryAfterMs);
    if (command.op === 'login') {
      const device = result.context.devices[command.deviceId];
      if (device) await this.pushFollowed(resident, [device]);
    }
    switch (command.op) {
      case 'query':
        return { ok: true, statuses: await this.statuses(app.sdkAppID, command.userIDs) };
      case 'subscribe':
        return { ok: true, evicted: reply?.ok ? (reply.evicted ?? []) : [] };
      default:
        return { ok: true, status: result.after };
    }
  }

  /**
   * Makes a transition durable, then tells the world: the snapshot write comes
   * first, so nothing is announced that a node's death could take back.
   */
  private async commit(resident: Resident, app: AppConfig, transition: Transition, lazy = false, kickedPlatforms: readonly Platform[] = []): Promise<void> {
    const changed = transition.after.version !== transition.before.version;
    const now = this.deps.clock.now();
    this.events.mark();
    if (changed && app.callbackUrl) this.enqueueWebhook(resident, app, transition, kickedPlatforms);
    const persistDue = now - resident.persistedAt >= app.limits.heartbeatTimeoutMs / 2;
    // Indexed before the write that makes it need restoring: a node dying between the two
    // leaves an entry too many (restored, found idle, passivated), never a durable ONLINE
    // user whose heartbeat deadline no node keeps.
    if (this.needsRestore(resident) && !resident.indexed) await this.durably(resident, () => this.index(resident, true));
    if (!lazy || changed || persistDue) await this.write(resident);
    for (const kick of transition.kicks) this.deps.delivery.kick(kick.gatewayId, kick.connId, kick.code);
    if (changed) this.announce(resident, transition);
    if (resident.outbox.length) this.webhooks.kick(userKey(resident.sdkAppID, resident.userID));
    this.updateInterest(resident);
    if (this.canRest(resident, now)) await this.passivate(resident);
  }

  /** Writes the actor's snapshot now, or with `writeBehind` marks it for when the actor leaves memory. */
  private async write(resident: Resident): Promise<void> {
    if (this.deps.writeBehind) resident.unwritten = true;
    else await this.persist(resident);
  }

  private persist(resident: Resident): Promise<void> {
    return this.durably(resident, async () => {
      resident.revision = await this.deps.users.save(
        resident.sdkAppID,
        resident.actor.status,
        resident.actor.persistedSnapshot(),
        resident.outbox,
        resident.revision,
      );
      resident.persistedAt = this.deps.clock.now();
      resident.unwritten = false;
    });
  }

  /**
   * Runs a write that makes the actor's change durable. If it fails, the actor is ahead of
   * its durable state and is dropped. That state may hold a deadline (a device's heartbeat,
   * the retention of its subscriptions) that only a resident actor keeps, so the user is
   * reloaded in the background, unless the write lost to another node's (a conflict): that
   * node owns the user now.
   */
  private async durably(resident: Resident, write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (error) {
      this.evict(resident);
      const key = userKey(resident.sdkAppID, resident.userID);
      if (this.deps.active && !(error instanceof KvConflictError)) this.restorer.add([`${resident.shard}.${key}`]);
      throw new PersistenceError(key, { cause: error });
    }
  }

  private announce(resident: Resident, transition: Transition): void {
    this.statusChanges.announce(resident.sdkAppID, transition.after);
    for (const device of Object.values(transition.context.devices)) {
      this.deps.delivery.push(device.gatewayId, device.connId, transition.after);
    }
  }

  /**
   * Follows what the actor and its friend list say now, under the app's switch as it is now: a
   * command that started before the switch changed commits after the change's own refresh.
   */
  private updateInterest(resident: Resident): void {
    const app = this.deps.apps.get(resident.sdkAppID);
    if (!app) return;
    const basis = this.interestBasis(resident, app);
    // Most commits (a custom status, a heartbeat) change none of it: the actor's subscription
    // list is a new array only when it changed, so comparing references is enough.
    const last = resident.interest;
    if (last && last.online === basis.online && last.subscriptions === basis.subscriptions && last.friends === basis.friends) return;
    // One that left memory while friends were being read takes no interest: nothing would take it out again.
    if (this.residents.get(userKey(resident.sdkAppID, resident.userID)) !== resident) return;
    resident.interest = basis;
    this.deps.fanout().follow(resident, resident.sdkAppID, followedBy(last), followedBy(basis));
  }

  private interestBasis(resident: Resident, app: AppConfig): InterestBasis {
    return {
      online: Object.keys(resident.actor.context.devices).length > 0,
      subscriptions: resident.actor.context.subscriptions,
      friends: app.friendStatusAutoNotify ? resident.friends : undefined,
    };
  }

  /**
   * Nobody awaits it to the end (an admin change reaches every node as a broadcast), so a read
   * that fails (JetStream unreachable for the KV call's whole retry) is logged here: it was an
   * unhandled rejection, which ends a Node process. The list held stays, and the read is tried
   * again later, until it succeeds or the user leaves memory.
   *
   * Two changes close together start two reads, whose answers may come back in either order:
   * only the read started last is kept, since it began after every change announced before it.
   */
  private async refreshFriends(resident: Resident, app: AppConfig): Promise<void> {
    const read = ++this.friendReadsStarted;
    this.latestFriendRead.set(resident, read);
    let friends: readonly string[] | undefined;
    try {
      friends = app.friendStatusAutoNotify ? orNone(await this.deps.friends.friendsOf(app.sdkAppID, resident.userID)) : NONE;
    } catch (error) {
      this.deps.log.error({ err: error, user: resident.userID, app: resident.sdkAppID }, 'friend list not read; the one held stays until a later read');
    }
    if (this.latestFriendRead.get(resident) !== read) return;
    this.latestFriendRead.delete(resident);
    if (!friends) return this.readFriendsLater(resident);
    this.cancelFriendRetry(resident);
    resident.friends = friends;
    this.updateInterest(resident);
  }

  private readFriendsLater(resident: Resident): void {
    // Not for one that left memory meanwhile: its next load reads the list.
    if (this.residents.get(userKey(resident.sdkAppID, resident.userID)) !== resident) return;
    const previous = this.friendRetries.get(resident);
    if (previous) this.timers.clearTimeout(previous.timer);
    const delayMs = previous ? Math.min(previous.delayMs * 2, FRIEND_RETRY_MAX_MS) : FRIEND_RETRY_FIRST_MS;
    const timer = this.timers.setTimeout(() => {
      const app = this.deps.apps.get(resident.sdkAppID);
      if (app) void this.refreshFriends(resident, app);
      else this.cancelFriendRetry(resident);
    }, delayMs);
    this.friendRetries.set(resident, { timer, delayMs });
  }

  private cancelFriendRetry(resident: Resident): void {
    const retry = this.friendRetries.get(resident);
    if (!retry) return;
    this.timers.clearTimeout(retry.timer);
    this.friendRetries.delete(resident);
  }

  /**
   * A user being loaded read its friend list (or skipped it, under the app's switch then) before
   * a change it must see: its list is read again once it is in memory. A load that fails leaves
   * nothing to refresh; its command reports the failure.
   */
  private async refreshOnceLoaded(loading: Promise<Resident>, app: AppConfig): Promise<void> {
    const resident = await loading.catch(() => undefined);
    if (resident?.sdkAppID === app.sdkAppID && this.residents.get(userKey(app.sdkAppID, resident.userID)) === resident) {
      await this.refreshFriends(resident, app);
    }
  }

  private async passivate(resident: Resident): Promise<void> {
    if (resident.unwritten) await this.persist(resident);
    // Its change is durable and announced by now: an entry left behind only costs a restore that
    // finds the user idle, where failing would answer the change as not made and keep the user here.
    if (resident.indexed) await this.index(resident, false).catch((error: unknown) => this.deps.log.error({ err: error, user: resident.userID, app: resident.sdkAppID }, 'active index entry not erased'));
    this.evict(resident);
  }

  private async index(resident: Resident, pending: boolean): Promise<void> {
    const active = this.deps.active;
    if (!active) return;
    const key = `${resident.shard}.${userKey(resident.sdkAppID, resident.userID)}`;
    // Erased, not deleted: a delete marker per user that ever went idle would stay in the
    // bucket, and every takeover's listing would walk them all.
    if (pending) {
      resident.indexRevision = await active.put(key, EMPTY);
    } else {
      await active.erase(key, resident.indexRevision);
      resident.indexRevision = undefined;
    }
    resident.indexed = pending;
  }

  /** Whether a node taking the shard over must restore this actor: a timer runs, or webhooks wait. */
  private needsRestore(resident: Resident): boolean {
    return !isIdle(resident.actor.state) || resident.outbox.length > 0;
  }

  /** Nothing pending and nobody watching: the actor may leave memory. */
  private canRest(resident: Resident, now: number): boolean {
    return !this.needsRestore(resident) && resident.inspectedUntil < now && !resident.timerTransitions?.length;
  }

  /**
   * Adds the webhook of a status change to the user's outbox, which the coming
   * snapshot write makes durable with the change itself.
   */
  private enqueueWebhook(resident: Resident, app: AppConfig, transition: Transition, kickedPlatforms: readonly Platform[]): void {
    const event = stateChangeEvent(app.sdkAppID, transition.before, transition.after, kickedPlatforms, Date.now());
    if (!event) return;
    const { outbox, overflow } = appendToOutbox(resident.outbox, event);
    resident.outbox = outbox;
    if (overflow) {
      this.deps.metrics?.webhookOverflow.inc(overflow);
      this.deps.log.error({ user: resident.userID, app: app.sdkAppID, dropped: overflow }, 'webhook outbox full: oldest undelivered events dropped');
    }
  }

  /** The app server took the oldest event: remove it durably, in the user's queue. */
  private async webhookDelivered(key: string, eventId: string): Promise<void> {
    const resident = this.residents.get(key);
    const app = resident && this.deps.apps.get(resident.sdkAppID);
    if (!resident || !app) return;
    await runInOrder(resident, async () => {
      // Its write holds the actor as it is: what its timers changed is committed first, with its events.
      if (resident.timerTransitions?.length) await this.commitTimerTransitions(resident);
      if (this.residents.get(key) !== resident || resident.outbox[0]?.id !== eventId) return;
      resident.outbox = orNone(resident.outbox.slice(1));
      await this.write(resident);
      if (this.canRest(resident, this.deps.clock.now())) await this.passivate(resident);
    });
  }

  private nextWebhook(key: string): PendingWebhook | undefined {
    const resident = this.residents.get(key);
    const app = resident && this.deps.apps.get(resident.sdkAppID);
    const event = resident?.outbox[0];
    if (!event || !app?.callbackUrl) return undefined;
    return { event, url: callbackUrlFor(app.callbackUrl, app.sdkAppID), secretKey: app.secretKey };
  }

  /** Undelivered webhook events of the actors here, for the metrics and the cluster view. */
  get pendingWebhooks(): number {
    let pending = 0;
    for (const resident of this.residents.values()) pending += resident.outbox.length;
    return pending;
  }

  /** With `writeBehind`: writes the snapshots of actors about to leave memory that changed since their last write. */
  private async writeUnwritten(leaving: readonly Resident[]): Promise<void> {
    const writes = leaving.filter((r) => r.unwritten).map((r) => this.persist(r));
    for (const result of await Promise.allSettled(writes)) {
      if (result.status === 'rejected') this.deps.log.error({ err: result.reason }, 'snapshot not written as its actor left memory');
    }
  }

  /** Drops a resident from memory; its durable state is whatever it last wrote. */
  private evict(resident: Resident): void {
    const key = userKey(resident.sdkAppID, resident.userID);
    if (this.residents.get(key) !== resident) return;
    this.unload(resident);
  }

  private unload(resident: Resident): void {
    const key = userKey(resident.sdkAppID, resident.userID);
    if (this.residents.get(key) === resident) this.residents.delete(key);
    this.webhooks.cancel(key);
    this.cancelFriendRetry(resident);
    this.deps.fanout().follow(resident, resident.sdkAppID, followedBy(resident.interest), FOLLOWS_NOBODY);
    resident.interest = undefined;
    resident.actor.stop();
  }

  private serveShard(shard: number): void {
    if (this.served.has(shard)) return;
    const subject = subjects.shardCommand(shard);
    const handler = async (data: Uint8Array) => {
      const command = withOwnStrings(decode<ShardCommand>(data));
      const { rid } = command;
      // The id is kept a few seconds: as a string of its own, not a slice pinning the message's text.
      const reply = await (rid === undefined ? this.handle(command) : this.replies.answer(ownString(rid), () => this.handle(command)));
      return reply && encode(reply);
    };
    // No queue group: a subscription left behind by a node that lost the shard must not
    // take commands away from the owner; it receives them too and stays silent.
    this.served.set(shard, this.deps.transport.serve(subject, handler));
  }

  private stopServing(shard: number): void {
    this.detachServing(shard)?.unsubscribe();
  }

  /** Stops counting `shard` as served here; the caller ends its subscription. */
  private detachServing(shard: number): Subscription | undefined {
    const subscription = this.served.get(shard);
    this.served.delete(shard);
    return subscription;
  }

  /** Brings back an actor listed in the `active` index after a shard move. */
  private async restore(indexKey: string): Promise<void> {
    const [, shard, app, token] = /^(\d+)\.(\d+)\.(.+)$/.exec(indexKey) ?? [];
    const config = app ? this.deps.apps.get(Number(app)) : undefined;
    // A shard handed on again before its turn came: its new owner restores it.
    if (!config || !token || !this.served.has(Number(shard))) return;
    const userID = userFromToken(token);
    try {
      await this.withResident(config, userID, async (resident) => {
        resident.indexed = true;
        this.updateInterest(resident);
        await this.pushFollowed(resident, Object.values(resident.actor.context.devices));
        if (this.canRest(resident, this.deps.clock.now())) await this.passivate(resident);
      });
    } catch (error) {
      // Handed on while it was read: not a failure to retry, its new owner restores it.
      if (!(error instanceof ShardNotServedError)) throw error;
    }
  }

  /**
   * Sends `devices` the current status of everyone their user follows: what a device
   * coming back (or an actor moved to this node) may have missed. Never-seen users
   * are left out; the SDK drops anything not newer than what it holds.
   */
  private async pushFollowed(resident: Resident, devices: Device[]): Promise<void> {
    if (devices.length === 0) return;
    const app = this.deps.apps.get(resident.sdkAppID);
    if (!app) return;
    const targets = followedBy({ ...this.interestBasis(resident, app), online: true });
    if (targets.size === 0) return;
    const statuses = await this.statuses(resident.sdkAppID, [...targets]);
    const fanout = this.deps.fanout();
    for (const status of statuses) if (status.version !== 0) fanout.offer(resident.sdkAppID, status, devices);
  }

  private async withResident<T>(app: AppConfig, userID: string, work: (resident: Resident) => Promise<T>): Promise<T> {
    const resident = await this.activate(app, userID);
    const runWork = (): Promise<T> => {
      // The actor may have been passivated or evicted while this command waited.
      const current = this.residents.get(userKey(app.sdkAppID, userID));
      return current === resident ? work(resident) : this.withResident(app, userID, work);
    };
    return runInOrder(resident, () =>
      resident.timerTransitions?.length ? this.commitTimerTransitions(resident).then(runWork) : runWork(),
    );
  }

  private async activate(app: AppConfig, userID: string): Promise<Resident> {
    const key = userKey(app.sdkAppID, userID);
    const existing = this.residents.get(key);
    if (existing) return existing;
    let pending = this.activating.get(key);
    if (!pending) {
      pending = this.load(app, userID).finally(() => this.activating.delete(key));
      this.activating.set(key, pending);
    }
    return pending;
  }

  private async load(app: AppConfig, userID: string): Promise<Resident> {
    const key = userKey(app.sdkAppID, userID);
    const [loaded, friends] = await Promise.all([
      this.deps.users.load(app.sdkAppID, userID).catch((error: unknown) => {
        if (error instanceof CorruptUserRecordError) return error;
        throw error;
      }),
      app.friendStatusAutoNotify ? this.deps.friends.friendsOf(app.sdkAppID, userID) : Promise.resolve(NONE),
    ]);
    let corrupt = loaded instanceof CorruptUserRecordError ? loaded : undefined;
    let stored = corrupt ? this.afresh(app, userID, corrupt) : (loaded as StoredActor | null);
    const shard = shardOf(app.sdkAppID, userID);
    // Dropped or handed over while it was read: an actor made now would be a second copy of the
    // user, which nothing here would ever take out of memory.
    if (!this.served.has(shard)) throw new ShardNotServedError(shard);
    let actor: UserActor;
    try {
      actor = this.actorFrom(app, userID, stored);
    } catch (error) {
      // A snapshot of the right shape that the machine cannot take (a state it does not have).
      if (!stored || corrupt) throw error;
      corrupt = new CorruptUserRecordError(key, stored.revision, stored.snapshot.context.version, { cause: error });
      stored = this.afresh(app, userID, corrupt);
      actor = this.actorFrom(app, userID, stored);
    }
    const resident: Resident = {
      sdkAppID: app.sdkAppID,
      userID,
      shard,
      indexed: false,
      indexRevision: undefined,
      revision: stored?.revision ?? 0,
      persistedAt: this.deps.clock.now(),
      unwritten: false,
      friends: orNone(friends),
      queue: IDLE,
      queued: 0,
      inspectedUntil: 0,
      outbox: orNone(stored?.outbox ?? NONE),
      // Every field is in the literal: V8 gives a literal's fields room in the object itself, and
      // fields added later went into a second array (~40 B per user).
      interest: undefined,
      timerTransitions: undefined,
      actor,
    };
    this.residents.set(key, resident);
    if (corrupt) {
      // Written at once, over the unreadable value: loaded again, it would revoke anew the
      // UserSigs issued since, and its watchers would not hear of the user until its next change.
      await this.persist(resident);
      this.statusChanges.announce(app.sdkAppID, resident.actor.status);
    }
    // Events left by an earlier owner (or an earlier life of this node) go out again.
    if (resident.outbox.length) this.webhooks.kick(key);
    return resident;
  }

  /**
   * A user whose stored state cannot be read starts afresh, UNLOGINED, as after an admin kick:
   * its subscriptions and devices are not known any more, so its UserSigs issued up to now are
   * refused (70052: a kick's revocation the record held is not lost), and its devices still
   * connected are refused (6014) and closed by their gateways. Its version continues from the
   * stored status when that much decodes, else from the clock's epoch ms, above any version a
   * watcher can hold, so watchers take the fresh status.
   */
  private actorFrom(app: AppConfig, userID: string, stored: StoredActor | null): UserActor {
    return new UserActor({
      sdkAppID: app.sdkAppID,
      userID,
      clock: this.deps.clock,
      ...(stored ? { snapshot: stored.snapshot } : {}),
      observer: this.actorObserver,
    });
  }

  private afresh(app: AppConfig, userID: string, corrupt: CorruptUserRecordError): StoredActor {
    const now = this.deps.clock.now();
    this.deps.log.error({ err: corrupt, user: userID, app: app.sdkAppID }, 'stored user state unreadable: the user starts afresh, UNLOGINED, its UserSigs revoked');
    const fresh = new UserActor({ sdkAppID: app.sdkAppID, userID, clock: this.deps.clock }).persistedSnapshot();
    const version = corrupt.lastVersion > 0 ? corrupt.lastVersion + 1 : now;
    return { snapshot: { value: fresh.value, context: { ...fresh.context, version, revokedAt: now } }, outbox: [], revision: corrupt.revision };
  }

  /** The resident an actor belongs to, if it still is the one held for its user. */
  private residentOf(actor: UserActor): Resident | undefined {
    const resident = this.residents.get(userKey(actor.context.sdkAppID, actor.context.userID));
    return resident?.actor === actor ? resident : undefined;
  }

  /** Shared by every actor here: three closures per user cost more memory than looking the user up. */
  private readonly actorObserver: ActorObserver = {
    onTimerTransition: (actor, transition) => {
      const resident = this.residentOf(actor);
      if (resident) this.onTimer(resident, transition);
    },
    onTimerError: (actor, error) =>
      this.deps.log.error({ err: error, user: actor.context.userID, app: actor.context.sdkAppID }, 'timer transition failed'),
    onProcessed: (actor, processed) => {
      const now = this.deps.clock.now();
      // Only while a dashboard watches the user; the lookup is skipped for everyone else.
      if (this.watchedUntil < now) return;
      const resident = this.residentOf(actor);
      if (!resident || resident.inspectedUntil < now) return;
      const { sdkAppID, userID } = actor.context;
      this.deps.transport.publish(subjects.inspection(sdkAppID, userID), encode(transitionRecord(processed, now)));
    },
  };

  private onTimer(resident: Resident, transition: Transition): void {
    (resident.timerTransitions ??= []).push(transition);
    void runInOrder(resident, () => this.commitTimerTransitions(resident));
  }

  /**
   * Commits, oldest first, what the actor's timers changed while it waited in the queue.
   * On a failed write the actor is evicted; the next command reloads it, and re-entering
   * its state re-arms the timers with the time left.
   */
  private async commitTimerTransitions(resident: Resident): Promise<void> {
    const app = this.deps.apps.get(resident.sdkAppID);
    const key = userKey(resident.sdkAppID, resident.userID);
    let transition: Transition | undefined;
    while ((transition = resident.timerTransitions?.shift())) {
      if (!app || this.residents.get(key) !== resident) return;
      try {
        await this.commit(resident, app, transition);
      } catch (error) {
        this.deps.log.error({ err: error, user: resident.userID, app: resident.sdkAppID }, 'timer transition not persisted');
        return;
      }
    }
  }
}

const refused = (code: number, desc: string, retryAfterMs?: number): ShardReply => ({
  ok: false,
  error: retryAfterMs === undefined ? { code, desc } : { code, desc, retryAfterMs },
});

/**
 * A command from another node with the strings its actor keeps copied out of the message: a
 * login's device ids stay with the actor for as long as the device is logged in (`ownString`).
 * A command from this node's own gateway is not decoded, and its strings are the gateway's own.
 */
function withOwnStrings(command: ShardCommand): ShardCommand {
  if (command.op !== 'login') return command;
  command.deviceId = ownString(command.deviceId);
  command.connId = ownString(command.connId);
  command.gatewayId = ownString(command.gatewayId);
  return command;
}

/** No device and no timer pending: the machine's state is fully in the buckets. */
function isIdle(machineState: unknown): boolean {
  const state = machineState as Record<string, string> | string;
  if (typeof state === 'string') return false;
  return Object.values(state).every((sub) => sub === 'idle');
}

function toEvent(command: Exclude<ShardCommand, { op: 'inspect' }>, app: AppConfig): PresenceEvent {
  // Each event is written out whole, not spread from a shared base: see Gateway.call.
  const policy = policyOf(app);
  switch (command.op) {
    case 'login':
      return { type: 'LOGIN', requestId: REQUEST, policy, deviceId: command.deviceId, connId: command.connId, gatewayId: command.gatewayId, platform: command.platform, sigTime: command.sigTime };
    case 'logout':
      return { type: 'LOGOUT', requestId: REQUEST, policy, deviceId: command.deviceId, connId: command.connId };
    case 'disconnect':
      return { type: 'DISCONNECT', requestId: REQUEST, policy, deviceId: command.deviceId, connId: command.connId };
    case 'heartbeat':
      return { type: 'HEARTBEAT', requestId: REQUEST, policy, deviceId: command.deviceId, connId: command.connId };
    case 'setCustomStatus':
      return { type: 'SET_CUSTOM_STATUS', requestId: REQUEST, policy, deviceId: command.deviceId, connId: command.connId, customStatus: command.customStatus };
    case 'query':
      return { type: 'QUERY', requestId: REQUEST, policy, deviceId: command.deviceId, connId: command.connId, userIDs: command.userIDs };
    case 'subscribe':
      return { type: 'SUBSCRIBE', requestId: REQUEST, policy, deviceId: command.deviceId, connId: command.connId, userIDs: command.userIDs };
    case 'unsubscribe':
      return { type: 'UNSUBSCRIBE', requestId: REQUEST, policy, deviceId: command.deviceId, connId: command.connId, userIDs: command.userIDs };
    case 'kick':
      return { type: 'KICK', requestId: REQUEST, policy };
  }
}
