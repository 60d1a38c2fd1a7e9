import type { UserStatus } from '../actors/types.js';
import { encode } from './codec.js';
import type { GatewayDelivery } from './commands.js';
import { subjects } from './subjects.js';
import type { Subscription, Transport } from './transport/types.js';

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
      else this.transport.publish(subjects.gatewayOut(gatewayId), encode(message));
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
