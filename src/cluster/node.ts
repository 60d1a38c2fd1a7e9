import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../actors/machine.js';
import type { TimerClock } from '../actors/index.js';
import { AdminApi, type AdminBackend } from '../admin/adminApi.js';
import { createHttpServer } from '../admin/httpServer.js';
import { PresenceError } from '../errors.js';
import { Gateway } from '../gateway/gateway.js';
import { createLogger, type Logger } from '../log.js';
import { NodeMetrics } from '../metrics/nodeMetrics.js';
import type { TransitionRecord } from '../inspection/transitionRecord.js';
import type { UserInspection } from '../inspection/userInspection.js';
import { decode, encode } from './codec.js';
import { DeliveryBatcher } from './delivery.js';
import { FanOut } from './fanout.js';
import { DEFAULT_MEMBERSHIP_TIMING, Membership, type MembershipTiming } from './membership.js';
import { ShardRouter } from './router.js';
import { compactRanges } from './shardRanges.js';
import { ShardLeases } from './shardLeases.js';
import { SHARD_COUNT } from './shards.js';
import { ShardHost, type Resident } from './shardHost.js';
import { AppRegistry, type AppConfig } from './stores/apps.js';
import { FriendStore } from './stores/friends.js';
import { UserStore } from './stores/users.js';
import { BUCKETS, subjects } from './subjects.js';
import { EmbeddedTransport } from './transport/embedded.js';
import type { Subscription, Transport } from './transport/types.js';

export interface PresenceNodeOptions {
  /** The transport to run on; the embedded in-process one when absent. */
  transport?: Transport;
  port?: number;
  host?: string;
  nodeId?: string;
  /** Protects `/admin`; a random one is made (and readable from `adminKey`) when absent or empty. */
  adminKey?: string;
  /** Apps to create at start when the `apps` bucket does not have them yet. */
  apps?: AppConfig[];
  /** Created only when the cluster has no app at all: the development app of `npm start`. */
  defaultApp?: AppConfig;
  /** Time of the user actors; xstate's SimulatedClock in tests. */
  clock?: Clock | TimerClock;
  log?: Logger;
  /**
   * Share the shards with every node on the same transport (NATS): membership,
   * shard leases and takeover. Without it the node serves every shard itself.
   */
  cluster?: {
    /** No shard is claimed while fewer nodes are in view. Default 1. */
    minView?: number;
    timing?: MembershipTiming;
    /** Shards claimed or handed over per membership tick (a dead node's all at once). Default 128. */
    maxMovesPerTick?: number;
  };
}

interface FriendsChanged {
  app: number;
  users: string[];
}

/**
 * One presence node: gateway, admin API and the shard host wired over a transport.
 * On the embedded transport it owns every shard; the NATS transport adds ownership.
 */
export class PresenceNode implements AdminBackend {
  readonly nodeId: string;
  readonly adminKey: string;
  readonly transport: Transport;
  readonly log: Logger;
  private readonly options: PresenceNodeOptions;
  private server: Server | undefined;
  private shardHost: ShardHost | undefined;
  private gateway: Gateway | undefined;
  private apps: AppRegistry | undefined;
  private friends: FriendStore | undefined;
  private users: UserStore | undefined;
  private router: ShardRouter | undefined;
  private fanout: FanOut<Resident> | undefined;
  private readonly subscriptions: Subscription[] = [];
  private ready = false;
  /** Whether `start` created `defaultApp` (its secret is worth printing then). */
  createdDefaultApp = false;
  private readonly startedAt = Date.now();
  private readonly incarnation = randomUUID();
  private membership: Membership | undefined;
  private leases: ShardLeases | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  /** Ends the ownership steps (their timer and the membership trigger), before a drain. */
  private stopStepping: (() => void) | undefined;

  constructor(options: PresenceNodeOptions = {}) {
    this.options = options;
    this.nodeId = options.nodeId ?? `node-${randomUUID().slice(0, 8)}`;
    // An empty key is no key: a random one, as `presence start` does, not an API that answers no one.
    this.adminKey = options.adminKey || randomBytes(24).toString('base64url');
    this.transport = options.transport ?? new EmbeddedTransport();
    this.log = options.log ?? createLogger({ nodeId: this.nodeId });
  }

  /** Opens the buckets, starts serving the shards and listens; resolves with the bound port. */
  async start(): Promise<number> {
    const t = this.transport;
    const [apps, friends, users] = await Promise.all([t.kv(BUCKETS.apps), t.kv(BUCKETS.friends), t.kv(BUCKETS.users)]);
    this.apps = new AppRegistry(apps);
    await this.apps.start();
    for (const app of this.options.apps ?? []) if (!this.apps.get(app.sdkAppID)) await this.apps.put(app);
    const defaultApp = this.options.defaultApp;
    if (defaultApp && this.apps.list().length === 0) this.createdDefaultApp = await this.apps.create(defaultApp);
    this.friends = new FriendStore(friends);
    this.users = new UserStore(users);
    this.router = new ShardRouter(t, {
      // A request to another node is sent again if that node dies before answering.
      holderOf: (shard) => {
        const claim = this.leases?.claimOf(shard);
        const membership = this.membership;
        if (!claim || !membership || claim.nodeId === this.nodeId) return undefined;
        return () => membership.isAlive(claim.nodeId, claim.incarnation);
      },
      onClaimChange: (shard, listener) => this.leases?.onClaimChange(shard, listener) ?? (() => undefined),
      local: (command) => this.shardHost?.handleHere(command),
    });
    const delivery = new DeliveryBatcher(t);
    const cluster = this.options.cluster;
    const active = cluster ? await t.kv(BUCKETS.active) : undefined;
    const metrics = new NodeMetrics(
      {
        connections: () => this.gateway?.connectionCount ?? 0,
        residentActors: () => this.shardHost?.residentCount ?? 0,
        onlineUsers: () => this.shardHost?.onlineCount ?? 0,
        shardsOwned: () => this.shardHost?.ownedShards.length ?? 0,
        natsReconnects: () => t.reconnects ?? 0,
        leaseRenewals: () => this.membership?.echoes ?? 0,
        shardsFenced: () => this.leases?.losses.fenced ?? 0,
        shardsPreempted: () => this.leases?.losses.preempted ?? 0,
        webhooksPending: () => this.shardHost?.pendingWebhooks ?? 0,
      },
      { node: this.nodeId },
    );
    const shardHost = new ShardHost({
      ...(active
        ? {
            active,
            isServing: (shard: number) => this.leases?.isServing(shard) ?? false,
            othersMayServe: () => this.membership?.othersMayJudgeDead ?? true,
          }
        : {}),
      nodeId: this.nodeId,
      transport: t,
      users: this.users,
      // Alone on the in-process transport, nobody else ever reads the `users` bucket.
      writeBehind: !cluster && t.kind === 'embedded',
      friends: this.friends,
      apps: this.apps,
      fanout: () => this.fanout!,
      delivery,
      clock: this.options.clock ?? { now: () => Date.now() },
      log: this.log,
      metrics,
    });
    this.shardHost = shardHost;
    this.fanout = new FanOut<Resident>(t, delivery, (resident) => shardHost.devicesOf(resident), (seconds) => metrics.fanoutLatency.observe(seconds));
    this.apps.onChange((app) => shardHost.appChanged(app));
    this.subscriptions.push(
      t.subscribe(subjects.broadcast('friends'), (data) => {
        const change = decode<FriendsChanged>(data);
        void shardHost.friendsChanged(change.app, change.users);
      }),
    );
    if (cluster) await this.joinCluster(shardHost, cluster);
    else shardHost.serve(Array.from({ length: SHARD_COUNT }, (_, shard) => shard));

    this.gateway = new Gateway({
      gatewayId: this.nodeId,
      transport: t,
      delivery,
      router: this.router,
      apps: this.apps,
      log: this.log,
      metrics,
    });
    this.gateway.start();
    this.server = createHttpServer({
      gateway: this.gateway,
      admin: new AdminApi(this, this.adminKey, this.log),
      metrics,
      isReady: () => this.ready,
      log: this.log,
    });
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 8080, this.options.host ?? '0.0.0.0', () => resolve());
    });
    this.ready = true;
    return this.port;
  }

  /** Announces this node and starts the lease loop; shards follow over the next ticks. */
  private async joinCluster(shardHost: ShardHost, cluster: NonNullable<PresenceNodeOptions['cluster']>): Promise<void> {
    const timing = cluster.timing ?? DEFAULT_MEMBERSHIP_TIMING;
    const leasesBucket = await this.transport.kv(BUCKETS.leases);
    // Monotonic: membership only measures durations on this node's own clock, and a wall clock
    // stepped by NTP would judge live nodes dead (forward) or keep a cut-off one live (backward).
    const clock = { now: () => performance.now() };
    this.membership = new Membership(this.transport, { nodeId: this.nodeId, incarnation: this.incarnation, startedAt: this.startedAt, shards: 0, actors: 0 }, clock, timing);
    this.leases = new ShardLeases(leasesBucket, this.membership, this.incarnation, shardHost, {
      shardCount: SHARD_COUNT,
      minView: cluster.minView ?? 1,
      maxMovesPerTick: cluster.maxMovesPerTick ?? 128,
      log: this.log,
    });
    const membership = this.membership;
    const leases = this.leases;
    // Heartbeats run on their own timer from the moment the node is heard, so neither
    // reading the claims below nor a slow ownership step can let the lease lapse.
    const renew = () =>
      membership
        .renew({
          shards: leases.heldShards.length,
          actors: shardHost.residentCount,
          onlineUsers: shardHost.onlineCount,
          eventsPerSecond: shardHost.events.perSecond(),
        })
        .catch((error) => this.log.error({ err: error }, 'membership heartbeat not sent'));
    await membership.start();
    this.heartbeatTimer = setInterval(renew, timing.renewMs);
    // Twice per heartbeat period, so a killed node is asked about soon after probeAfterMs.
    this.probeTimer = setInterval(() => membership.probeSilent(), timing.renewMs / 2);
    await leases.start();
    const step = () => leases.tick().catch((error) => this.log.error({ err: error }, 'ownership step failed'));
    // A node found dead (or back) is acted on at once, not at the next step.
    const stopStepOnChange = membership.onChange(() => void step());
    // Phoenix-style stutter: nodes started together do not step in lockstep.
    await new Promise((resolve) => setTimeout(resolve, Math.random() * timing.renewMs * 0.25));
    const stepTimer = setInterval(step, timing.renewMs);
    this.stopStepping = () => {
      clearInterval(stepTimer);
      stopStepOnChange();
    };
    void step();
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  /** Stops taking devices, persists every actor and closes; clients reconnect elsewhere. */
  async stop(): Promise<void> {
    this.ready = false;
    await this.gateway?.close();
    for (const subscription of this.subscriptions) subscription.unsubscribe();
    this.stopStepping?.();
    // Still heartbeating while handing over: a lease lapsing mid-drain would fence the node.
    await this.leases?.releaseAll();
    clearInterval(this.heartbeatTimer);
    clearInterval(this.probeTimer);
    this.leases?.stop();
    await this.membership?.leave();
    await this.shardHost?.stop();
    this.fanout?.close();
    this.apps?.stop();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
    await this.transport.close();
  }

  getApp(sdkAppID: number): AppConfig | undefined {
    return this.apps!.get(sdkAppID);
  }

  putApp(app: AppConfig): Promise<AppConfig> {
    return this.apps!.put(app);
  }

  async changeFriends(sdkAppID: number, add: Array<[string, string]>, remove: Array<[string, string]>): Promise<void> {
    const users = await this.friends!.apply(sdkAppID, add, remove);
    const change: FriendsChanged = { app: sdkAppID, users };
    this.transport.publish(subjects.broadcast('friends'), encode(change));
  }

  statuses(sdkAppID: number, userIDs: string[]) {
    return this.shardHost!.statuses(sdkAppID, userIDs);
  }

  /** A user's actor as the dashboard shows it; `watchMs` > 0 makes its owner publish its transitions. */
  async inspect(sdkAppID: number, userID: string, watchMs = 0): Promise<UserInspection> {
    const reply = await this.router!.send({ op: 'inspect', app: sdkAppID, user: userID, watchMs });
    if (!reply.ok) throw new PresenceError(reply.error.code, reply.error.desc);
    return reply.inspection!;
  }

  /** Calls `handler` with each transition of a user while its owner publishes them (see `inspect`). */
  watchTransitions(sdkAppID: number, userID: string, handler: (record: TransitionRecord) => void): Subscription {
    return this.transport.subscribe(subjects.inspection(sdkAppID, userID), (data) => handler(decode<TransitionRecord>(data)));
  }

  /**
   * Disconnects the user's devices and revokes the UserSigs issued up to now (70052). The
   * actor does both in one step and keeps the revocation, so a device that reconnects at once,
   * or whose login was already on its way, is refused.
   */
  async kick(sdkAppID: number, userID: string): Promise<void> {
    const reply = await this.router!.send({ op: 'kick', app: sdkAppID, user: userID });
    if (!reply.ok) throw new PresenceError(reply.error.code, reply.error.desc);
  }

  async clusterView(): Promise<unknown> {
    const host = this.shardHost!;
    const self = {
      nodeId: this.nodeId,
      startedAt: this.startedAt,
      shards: host.ownedShards.length,
      ownedShards: compactRanges(host.ownedShards),
      actors: host.residentCount,
      onlineUsers: host.onlineCount,
      eventsPerSecond: host.events.perSecond(),
      webhooksPending: host.pendingWebhooks,
      webhooksFailingUsers: host.webhooks.failingUsers,
      restoringActors: host.pendingRestores,
      connections: this.gateway!.connectionCount,
      watchedUsers: this.fanout!.interestCount,
    };
    if (!this.membership || !this.leases) return { transport: this.transport.kind, shardCount: SHARD_COUNT, nodes: [self] };
    const owners = this.leases.owners();
    const shardsOf = (nodeId: string) => [...owners].filter(([, owner]) => owner === nodeId).map(([shard]) => shard).sort((a, b) => a - b);
    const nodes = this.membership.records().map((record) => {
      if (record.nodeId === this.nodeId) return self;
      const owned = shardsOf(record.nodeId);
      return {
        nodeId: record.nodeId,
        startedAt: record.startedAt,
        shards: owned.length,
        ownedShards: compactRanges(owned),
        actors: record.actors,
        onlineUsers: record.onlineUsers ?? 0,
        eventsPerSecond: record.eventsPerSecond ?? 0,
      };
    });
    return {
      transport: this.transport.kind,
      shardCount: SHARD_COUNT,
      unownedShards: SHARD_COUNT - owners.size,
      nodes,
    };
  }
}
