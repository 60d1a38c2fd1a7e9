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

/** What a socket is due in a tick: frames already framed (answers, kicks), or statuses to push. */
type Outgoing = Uint8Array | UserStatus;

/**
 * The frames due to each socket during one tick, written when the tick ends as one
 * write per socket: the frames in the order they were sent, then one push frame of the
 * statuses. A socket's answers and pushes of a tick leave in one write, and a socket
 * whose device waits on its answer is written to once the tick's work is done rather
 * than between other sockets' frames.
 *
 * A change fanned out to many watchers reaches the gateway as one status object: it is
 * encoded once per tick, its frame alone is built once for every socket that gets only
 * it, and a socket that gets several statuses has its frame assembled from their encodings.
 */
export class Outbox {
  private readonly batch = new TickBatch<Connection, Outgoing>((pending) => {
    const encoded = new Map<UserStatus, Uint8Array>();
    const encodingOf = (status: UserStatus) => {
      let bytes = encoded.get(status);
      if (!bytes) encoded.set(status, (bytes = encodeForWire(status)));
      return bytes;
    };
    const alone = new Map<UserStatus, Buffer>();
    const frameOf = (status: UserStatus) => {
      let frame = alone.get(status);
      if (!frame) alone.set(status, (frame = pushFrame([encodingOf(status)])));
      return frame;
    };
    for (const [connection, items] of pending) {
      if (items.length === 1) {
        const item = items[0]!;
        connection.write(item instanceof Uint8Array ? item : frameOf(item));
        continue;
      }
      const frames: Uint8Array[] = [];
      const statuses: UserStatus[] = [];
      for (const item of items) {
        if (item instanceof Uint8Array) frames.push(item);
        else statuses.push(item);
      }
      if (statuses.length === 1) frames.push(frameOf(statuses[0]!));
      else if (statuses.length > 1) frames.push(pushFrame(statuses.map(encodingOf)));
      connection.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
    }
  });

  /** Queues a frame, framed already, for the end of the tick. */
  frame(connection: Connection, bytes: Uint8Array): void {
    this.batch.add(connection, bytes);
  }

  push(connection: Connection, status: UserStatus): void {
    this.batch.add(connection, status);
  }

  /**
   * Writes the socket's queued frames at once, before `ws` writes its close frame; its
   * queued statuses are dropped, as a socket closing gets no more pushes.
   */
  writeFramesNow(connection: Connection): void {
    const items = this.batch.take(connection);
    if (!items) return;
    for (const item of items) if (item instanceof Uint8Array) connection.write(item);
  }
}
