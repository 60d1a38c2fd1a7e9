import type { UserStatus } from '../actors/types.js';
import { encode } from './codec.js';
import type { StatusChanges } from './commands.js';
import { subjects } from './subjects.js';
import { TickBatch } from './tickBatch.js';
import type { Transport } from './transport/types.js';

/**
 * Statuses per message at most: a status encodes to ~330 bytes at the most (a 32-character
 * userID, a 256-byte custom status), so a message stays far below NATS's 1 MB payload limit
 * however many changes one tick makes.
 */
export const MAX_STATUSES_PER_MESSAGE = 256;

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
  /** When the oldest change of the pending batch was announced: the fan-out latency counts the wait for the tick's end. */
  private oldestAt: number | undefined;

  constructor(transport: Transport) {
    this.batch = new TickBatch((pending) => {
      const at = this.oldestAt ?? Date.now();
      this.oldestAt = undefined;
      for (const [app, statuses] of pending) {
        for (let from = 0; from < statuses.length; from += MAX_STATUSES_PER_MESSAGE) {
          const message: StatusChanges = { app, statuses: statuses.slice(from, from + MAX_STATUSES_PER_MESSAGE), at };
          transport.publish(subjects.statusChanges(app), encode(message));
        }
      }
    });
  }

  announce(sdkAppID: number, status: UserStatus): void {
    this.oldestAt ??= Date.now();
    this.batch.add(sdkAppID, status);
  }

  /** Publishes what is pending now, without waiting for the end of the tick. */
  flush(): void {
    this.batch.flush();
  }
}
