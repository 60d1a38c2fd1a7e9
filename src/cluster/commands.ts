import type { Platform, UserStatus } from '../actors/types.js';
import type { UserInspection } from '../inspection/userInspection.js';
import type { WireError } from '../protocol.js';

/** Addressed to the node that owns the user's shard, over `subjects.shardCommand`. */
interface ForUser {
  app: number;
  user: string;
  /**
   * Set by the router on a command it may repeat (`ShardRouter`): the owner answers a repeat
   * from its `ReplyMemory` instead of running the command twice.
   */
  rid?: string;
}

/**
 * A command over the transport that has had no answer for this long is sent again with the
 * same `rid`: its request or its answer may have been lost with a NATS server that stopped.
 */
export const REPEAT_AFTER_MS = 2_000;
/**
 * How long an owner keeps the answers to commands with a `rid`, at least (at most twice this). A
 * repeat leaves at most `REPEAT_AFTER_MS` after an answer was lost; a second to arrive. Each
 * answer kept costs ~200 B, so a node answering 10 000 remote commands a second holds 6-12 MB.
 */
export const REPLIES_KEPT_MS = REPEAT_AFTER_MS + 1_000;

interface FromDevice extends ForUser {
  deviceId: string;
  connId: string;
  /**
   * The device proved alive and its actor is due to hear it: the owner moves the device's
   * heartbeat deadline before it runs the call, as a `heartbeat` command would, so a
   * chatty device's liveness rides on its calls instead of costing a command of its own.
   */
  alive?: true;
}

export type ShardCommand =
  /** `sigTime`: `TLS.time` of the UserSig the gateway verified, for the actor's revocation check. */
  | (FromDevice & { op: 'login'; gatewayId: string; platform: Platform; sigTime: number })
  | (FromDevice & { op: 'logout' | 'disconnect' | 'heartbeat' })
  | (FromDevice & { op: 'setCustomStatus'; customStatus: string })
  | (FromDevice & { op: 'query' | 'subscribe' | 'unsubscribe'; userIDs: string[] })
  | (ForUser & { op: 'kick' })
  /** For the dashboard; `watchMs` asks the owner to publish the user's transitions for that long. */
  | (ForUser & { op: 'inspect'; watchMs?: number });

export type ShardReply =
  | { ok: true; status?: UserStatus; statuses?: UserStatus[]; evicted?: string[]; inspection?: UserInspection }
  /** `moved`: the node does not serve the shard (any more); the router retries elsewhere. */
  | { ok: false; error: WireError; moved?: boolean };

/** One message to one gateway: the statuses due to each of its connections, and kicks. */
export interface GatewayDelivery {
  /** Each status pushed in this message, once, however many connections it goes to. */
  statuses?: UserStatus[];
  /** `[connId, indexes into statuses, oldest first]` */
  pushes?: Array<[string, number[]]>;
  /** `[connId, error code]`: tell the device why, then close its socket. */
  kicks?: Array<[string, number]>;
}

/** Published on `subjects.statusChanges` by the owner node: the changes of one tick, each after its write. */
export interface StatusChanges {
  app: number;
  /** Oldest first; a user's changes keep their order. */
  statuses: UserStatus[];
  /** The publisher's clock when the oldest of these changes was announced, for the fan-out latency metric. */
  at: number;
}
