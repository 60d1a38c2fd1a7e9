/**
 * The only place that builds NATS subject names and KV keys. A userID may hold `.`
 * (a subject separator) and `@`, so it is encoded into one safe token here.
 */

const PREFIX = 'pres.v1';

/**
 * Encodes a userID (`[A-Za-z0-9_.@-]`) into one subject token and KV key segment:
 * `=` escapes, `.` → `=2E`, `@` → `=40`. Reversible and injective.
 */
export function userToken(userID: string): string {
  return userID.replace(/[=.@]/g, (c) => `=${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

export function userFromToken(token: string): string {
  return token.replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

export const subjects = {
  /** Requests to whichever node owns `shard`. */
  shardCommand: (shard: number) => `${PREFIX}.s.${shard}.cmd`,
  /** The status changes of one app's users, each owner node's batched per tick. */
  statusChanges: (sdkAppID: number) => `${PREFIX}.st.${sdkAppID}`,
  /** Deliveries to one gateway's sockets. */
  gatewayOut: (gatewayId: string) => `${PREFIX}.gw.${gatewayId}.out`,
  /** Every node's membership heartbeat (its lease). */
  heartbeats: `${PREFIX}.nodes.hb`,
  /** Asks one node whether it is still connected (node ids are single safe tokens). */
  nodeProbe: (nodeId: string) => `${PREFIX}.nodes.${nodeId}.probe`,
  /** A user's transitions, published by its owner only while a dashboard watches it. */
  inspection: (sdkAppID: number, userID: string) => `${PREFIX}.i.${sdkAppID}.${userToken(userID)}`,
  /** Admin fan-out to every node: friend-list changes. */
  broadcast: (topic: string) => `${PREFIX}.all.${topic}`,
};

/** KV key of one user of one app, for the `users` and `friends` buckets. */
export const userKey = (sdkAppID: number, userID: string): string => `${sdkAppID}.${userToken(userID)}`;

export const appKey = (sdkAppID: number): string => String(sdkAppID);

export const BUCKETS = {
  users: 'pres_users',
  apps: 'pres_apps',
  friends: 'pres_friends',
  leases: 'pres_leases',
  active: 'pres_active',
} as const;
