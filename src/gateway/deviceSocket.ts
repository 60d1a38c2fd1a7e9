import { WebSocket } from 'ws';
import type { Connection } from './connection.js';

/**
 * `ws`'s WebSocket for a device, given to the server once. `ws` closes a socket itself too,
 * answering the device's close frame or refusing a bad frame, and writes its close frame at
 * once: this class writes the connection's queued frames first on every close. It also takes
 * the place of a closure per socket: the gateway's listeners, shared by every socket, find
 * the connection here.
 */
export class DeviceSocket extends WebSocket {
  /** Set when the gateway accepts the socket. */
  connection: Connection | undefined;

  override close(code?: number, data?: string | Buffer): void {
    this.connection?.writeQueuedFrames();
    super.close(code, data);
  }
}
