import type { UserStatus } from '../actors/types.js';
import { TickBatch } from '../cluster/tickBatch.js';
import { wireFrame, type Connection } from './connection.js';

/**
 * The pushes due to each socket during one tick, sent when the tick ends as one
 * frame per socket. A change fanned out to many watchers reaches the gateway as one
 * status object, so its frame is encoded once and the same bytes go to every socket
 * that gets only it.
 */
export class PushQueue {
  private readonly batch = new TickBatch<Connection, UserStatus>((pending) => {
    const shared = new Map<UserStatus, Buffer>();
    for (const [connection, list] of pending) {
      if (list.length > 1) {
        connection.sendWire(wireFrame({ t: 'push', list }));
        continue;
      }
      const status = list[0]!;
      let frame = shared.get(status);
      if (!frame) shared.set(status, (frame = wireFrame({ t: 'push', list })));
      connection.sendWire(frame);
    }
  });

  add(connection: Connection, status: UserStatus): void {
    this.batch.add(connection, status);
  }
}
