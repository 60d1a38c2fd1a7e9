import { WebSocket } from 'ws';

/** What a socket writes before its close frame: the frames its connection queued this tick. */
export interface QueuedFrames {
  writeQueuedFrames(): void;
}

/**
 * `ws`'s WebSocket for a device. `ws` closes a socket itself too, answering the device's
 * close frame or refusing a bad frame, and writes its close frame at once: this class writes
 * the connection's queued frames first on every close. A subclass, given to the server once,
 * rather than a wrapper of `close` per socket, which cost a closure and a bound function each.
 */
export class DeviceSocket extends WebSocket {
  /** Set when the gateway accepts the socket. */
  queued: QueuedFrames | undefined;

  override close(code?: number, data?: string | Buffer): void {
    this.queued?.writeQueuedFrames();
    super.close(code, data);
  }
}
