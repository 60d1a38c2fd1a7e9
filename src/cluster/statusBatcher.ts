import type { UserStatus } from '../actors/types.js';
import { encode } from './codec.js';
import type { StatusChanges } from './commands.js';
import { subjects } from './subjects.js';
import type { Transport } from './transport/types.js';

/**
 * Gathers the status changes a node's actors announce during one tick into one
 * message per app. Every node with a watcher in the app receives each message, so
 * in a burst a message per change cost each of them a receive, a dispatch and a
 * decode per change; now it is one per owner node and tick. A user is owned by one
 * node at a time and its changes are appended in order, so its versions still
 * arrive in order.
 */
export class StatusBatcher {
  private pending = new Map<number, UserStatus[]>();
  private scheduled = false;

  constructor(private readonly transport: Transport) {}

  announce(sdkAppID: number, status: UserStatus): void {
    const statuses = this.pending.get(sdkAppID);
    if (statuses) statuses.push(status);
    else this.pending.set(sdkAppID, [status]);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Publishes what is pending now, without waiting for the end of the tick. */
  flush(): void {
    this.scheduled = false;
    if (!this.pending.size) return;
    const pending = this.pending;
    this.pending = new Map();
    const at = Date.now();
    for (const [app, statuses] of pending) {
      const message: StatusChanges = { app, statuses, at };
      this.transport.publish(subjects.statusChanges(app), encode(message));
    }
  }
}
