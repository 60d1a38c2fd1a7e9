import type { UserStatus } from '../actors/types.js';
import { TickBatch } from '../cluster/tickBatch.js';
import { encodeForWire, type Connection } from './connection.js';
import { binaryFrame } from './wsFrame.js';

/**
 * `{ t: 'push', list: ` as the wire's encoder writes it, up to the list's array header:
 * its encoding of the frame with an empty list, less that list's one byte (0x90).
 */
const PUSH_PREFIX = ((): Buffer => {
  const empty = Buffer.from(encodeForWire({ t: 'push', list: [] }));
  if (empty[empty.length - 1] !== 0x90) throw new Error('unexpected msgpack encoding of an empty list');
  return empty.subarray(0, empty.length - 1);
})();

/** A msgpack array header for `length` items. */
function arrayHeader(length: number): Buffer {
  if (length < 16) return Buffer.from([0x90 | length]);
  const header = Buffer.allocUnsafe(length < 65_536 ? 3 : 5);
  if (length < 65_536) {
    header[0] = 0xdc;
    header.writeUInt16BE(length, 1);
  } else {
    header[0] = 0xdd;
    header.writeUInt32BE(length, 1);
  }
  return header;
}

/** The wire frame of `{ t: 'push', list }`, assembled from its statuses each encoded already. */
export const pushFrame = (encodedStatuses: Uint8Array[]): Buffer =>
  binaryFrame([PUSH_PREFIX, arrayHeader(encodedStatuses.length), ...encodedStatuses]);

/**
 * The pushes due to each socket during one tick, sent when the tick ends as one
 * frame per socket. A change fanned out to many watchers reaches the gateway as one
 * status object: it is encoded once per tick, its frame alone is built once for every
 * socket that gets only it, and a socket that gets several statuses has its frame
 * assembled from their encodings.
 */
export class PushQueue {
  private readonly batch = new TickBatch<Connection, UserStatus>((pending) => {
    const encoded = new Map<UserStatus, Uint8Array>();
    const encodingOf = (status: UserStatus) => {
      let bytes = encoded.get(status);
      if (!bytes) encoded.set(status, (bytes = encodeForWire(status)));
      return bytes;
    };
    const alone = new Map<UserStatus, Buffer>();
    for (const [connection, list] of pending) {
      if (list.length > 1) {
        connection.sendWire(pushFrame(list.map(encodingOf)));
        continue;
      }
      const status = list[0]!;
      let frame = alone.get(status);
      if (!frame) alone.set(status, (frame = pushFrame([encodingOf(status)])));
      connection.sendWire(frame);
    }
  });

  add(connection: Connection, status: UserStatus): void {
    this.batch.add(connection, status);
  }
}
