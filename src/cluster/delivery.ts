import type { UserStatus } from '../actors/types.js';
import { encode } from './codec.js';
import type { GatewayDelivery } from './commands.js';
import { subjects } from './subjects.js';
import type { Transport } from './transport/types.js';

interface Pending {
  pushes: Map<string, UserStatus[]>;
  kicks: Array<[string, number]>;
}

/**
 * Collects everything due to each gateway during one tick and sends it as one
 * message per gateway, so a burst of changes costs one publish per gateway, not
 * one per connection and change.
 */
export class DeliveryBatcher {
  private pending = new Map<string, Pending>();
  private scheduled = false;

  constructor(private readonly transport: Transport) {}

  push(gatewayId: string, connId: string, status: UserStatus): void {
    const pending = this.pendingFor(gatewayId);
    const list = pending.pushes.get(connId);
    if (list) list.push(status);
    else pending.pushes.set(connId, [status]);
  }

  kick(gatewayId: string, connId: string, code: number): void {
    this.pendingFor(gatewayId).kicks.push([connId, code]);
  }

  /** Sends what is pending now, without waiting for the end of the tick. */
  flush(): void {
    this.scheduled = false;
    const pending = this.pending;
    this.pending = new Map();
    for (const [gatewayId, { pushes, kicks }] of pending) {
      const message: GatewayDelivery = {};
      if (pushes.size) message.pushes = [...pushes];
      if (kicks.length) message.kicks = kicks;
      this.transport.publish(subjects.gatewayOut(gatewayId), encode(message));
    }
  }

  private pendingFor(gatewayId: string): Pending {
    let pending = this.pending.get(gatewayId);
    if (!pending) this.pending.set(gatewayId, (pending = { pushes: new Map(), kicks: [] }));
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return pending;
  }
}
