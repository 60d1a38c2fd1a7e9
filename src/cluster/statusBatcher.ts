import type { UserStatus } from '../actors/types.js';
import { encodeBounded } from './codec.js';
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
  /** When the oldest change of the pending batch was announced: the fan-out latency counts the wait for the tick's end. */
  private oldestAt: number | undefined;

  constructor(transport: Transport) {
    this.batch = new TickBatch((pending) => {
      const at = this.oldestAt ?? Date.now();
      this.oldestAt = undefined;
      for (const [app, statuses] of pending) {
        for (const bytes of encodeBounded({ app, statuses, at }, halvesOf)) transport.publish(subjects.statusChanges(app), bytes);
      }
      transport.writePending?.();
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

/** The first and the second half of a tick's changes, in order; none for a single change. */
export function halvesOf(message: StatusChanges): [StatusChanges, StatusChanges] | undefined {
  if (message.statuses.length < 2) return undefined;
  const middle = message.statuses.length >> 1;
  return [
    { ...message, statuses: message.statuses.slice(0, middle) },
    { ...message, statuses: message.statuses.slice(middle) },
  ];
}
