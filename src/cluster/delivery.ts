import type { UserStatus } from '../actors/types.js';
import { encode } from './codec.js';
import type { GatewayDelivery } from './commands.js';
import { subjects } from './subjects.js';
import type { Subscription, Transport } from './transport/types.js';

/**
 * Upper bounds of the encoded size of a message's parts: a status with a 32-character userID
 * and a 256-byte custom status, a push entry with a 36-character connection id, an index.
 */
const STATUS_BYTES = 330;
const ENTRY_BYTES = 48;
const INDEX_BYTES = 3;
/** A published message's size at the most, far below NATS's 1 MB payload limit. */
export const MAX_MESSAGE_BYTES = 256 * 1024;

interface Pending {
  statuses: UserStatus[];
  /** Index of each status object in `statuses`: a change fanned out to many watchers is one object. */
  indexOf: Map<UserStatus, number>;
  pushes: Map<string, number[]>;
  kicks: Array<[string, number]>;
}

/**
 * Collects everything due to each gateway during one tick and sends it as one
 * message per gateway, so a burst of changes costs one publish per gateway, not
 * one per connection and change. A status going to many connections is in the
 * message once, and the gateway encodes its frame once.
 */
export class DeliveryBatcher {
  private pending = new Map<string, Pending>();
  private scheduled = false;
  private local: { gatewayId: string; deliver: (message: GatewayDelivery) => void } | undefined;

  constructor(private readonly transport: Transport) {}

  /**
   * Hands the messages for this node's own gateway over in process: they skip the
   * broker and the encoding both ways (a third of a 3-node cluster's deliveries, all
   * of an embedded node's). The status objects are shared, so the gateway must treat
   * them as read-only, as it treats decoded ones.
   */
  connectLocal(gatewayId: string, deliver: (message: GatewayDelivery) => void): Subscription {
    const local = { gatewayId, deliver };
    this.local = local;
    return {
      unsubscribe: () => {
        if (this.local === local) this.local = undefined;
      },
    };
  }

  push(gatewayId: string, connId: string, status: UserStatus): void {
    const pending = this.pendingFor(gatewayId);
    let index = pending.indexOf.get(status);
    if (index === undefined) {
      index = pending.statuses.push(status) - 1;
      pending.indexOf.set(status, index);
    }
    const list = pending.pushes.get(connId);
    if (list) list.push(index);
    else pending.pushes.set(connId, [index]);
  }

  kick(gatewayId: string, connId: string, code: number): void {
    this.pendingFor(gatewayId).kicks.push([connId, code]);
  }

  /** Sends what is pending now, without waiting for the end of the tick. */
  flush(): void {
    this.scheduled = false;
    const pending = this.pending;
    this.pending = new Map();
    for (const [gatewayId, { statuses, pushes, kicks }] of pending) {
      const message: GatewayDelivery = {};
      if (pushes.size) {
        message.statuses = statuses;
        message.pushes = [...pushes];
      }
      if (kicks.length) message.kicks = kicks;
      if (gatewayId === this.local?.gatewayId) this.local.deliver(message);
      else for (const part of boundedParts(message)) this.transport.publish(subjects.gatewayOut(gatewayId), encode(part));
    }
  }

  private pendingFor(gatewayId: string): Pending {
    let pending = this.pending.get(gatewayId);
    if (!pending) this.pending.set(gatewayId, (pending = { statuses: [], indexOf: new Map(), pushes: new Map(), kicks: [] }));
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return pending;
  }
}

/**
 * Splits a gateway message whose size could pass `MAX_MESSAGE_BYTES` into parts that
 * cannot, in order: a connection's statuses keep their order across parts, and kicks
 * come after every push, as in one message. A tick of a large burst to a gateway with
 * many connections can otherwise make a message NATS refuses to carry.
 */
export function boundedParts(message: GatewayDelivery, maxBytes = MAX_MESSAGE_BYTES): GatewayDelivery[] {
  const statuses = message.statuses ?? [];
  const pushes = message.pushes ?? [];
  const kicks = message.kicks ?? [];
  let worst = statuses.length * STATUS_BYTES + (pushes.length + kicks.length) * ENTRY_BYTES;
  for (const [, indexes] of pushes) worst += indexes.length * INDEX_BYTES;
  if (worst <= maxBytes) return [message];

  const parts: GatewayDelivery[] = [];
  const newPart = () => ({ statuses: [] as UserStatus[], indexOf: new Map<number, number>(), pushes: [] as Array<[string, number[]]>, kicks: [] as Array<[string, number]>, bytes: 0 });
  let part = newPart();
  const endPart = () => {
    if (!part.bytes) return;
    const done: GatewayDelivery = {};
    if (part.pushes.length) {
      done.statuses = part.statuses;
      done.pushes = part.pushes;
    }
    if (part.kicks.length) done.kicks = part.kicks;
    parts.push(done);
    part = newPart();
  };
  for (const [connId, indexes] of pushes) {
    let entry: number[] | undefined;
    for (const index of indexes) {
      const cost = INDEX_BYTES + (part.indexOf.has(index) ? 0 : STATUS_BYTES) + (entry ? 0 : ENTRY_BYTES);
      if (part.bytes + cost > maxBytes) {
        endPart();
        entry = undefined;
      }
      let local = part.indexOf.get(index);
      if (local === undefined) {
        local = part.statuses.push(statuses[index]!) - 1;
        part.indexOf.set(index, local);
        part.bytes += STATUS_BYTES;
      }
      if (!entry) {
        entry = [];
        part.pushes.push([connId, entry]);
        part.bytes += ENTRY_BYTES;
      }
      entry.push(local);
      part.bytes += INDEX_BYTES;
    }
  }
  for (const kick of kicks) {
    if (part.bytes + ENTRY_BYTES > maxBytes) endPart();
    part.kicks.push(kick);
    part.bytes += ENTRY_BYTES;
  }
  endPart();
  return parts;
}
