import type { UserStatus } from '../actors/types.js';
import { encode } from './codec.js';
import type { StatusChanges } from './commands.js';
import { subjects } from './subjects.js';
import { TickBatch } from './tickBatch.js';
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
  private readonly batch: TickBatch<number, UserStatus>;

  constructor(transport: Transport) {
    this.batch = new TickBatch((pending) => {
      const at = Date.now();
      for (const [app, statuses] of pending) {
        const message: StatusChanges = { app, statuses, at };
        transport.publish(subjects.statusChanges(app), encode(message));
      }
    });
  }

  announce(sdkAppID: number, status: UserStatus): void {
    this.batch.add(sdkAppID, status);
  }

  /** Publishes what is pending now, without waiting for the end of the tick. */
  flush(): void {
    this.batch.flush();
  }
}
