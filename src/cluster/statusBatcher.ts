import type { UserStatus } from '../actors/types.js';
import { encode } from './codec.js';
import type { StatusChanges } from './commands.js';
import { subjects } from './subjects.js';
import { TickBatch } from './tickBatch.js';
import type { Transport } from './transport/types.js';

/**
 * A published message's size at the most, far below NATS's default 1 MB payload limit;
 * a tick of a large burst can pass it, and its changes then go out in several messages.
 */
export const MAX_MESSAGE_BYTES = 512 * 1024;

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
        for (const bytes of encodeBounded({ app, statuses, at })) transport.publish(subjects.statusChanges(app), bytes);
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

/** The message encoded, or, when that passes `maxBytes`, its halves encoded the same way, in order. */
export function encodeBounded(message: StatusChanges, maxBytes = MAX_MESSAGE_BYTES): Uint8Array[] {
  const bytes = encode(message);
  if (bytes.length <= maxBytes || message.statuses.length < 2) return [bytes];
  const middle = message.statuses.length >> 1;
  return [
    ...encodeBounded({ ...message, statuses: message.statuses.slice(0, middle) }, maxBytes),
    ...encodeBounded({ ...message, statuses: message.statuses.slice(middle) }, maxBytes),
  ];
}
