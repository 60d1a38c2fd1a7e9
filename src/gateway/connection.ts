import { Packr } from 'msgpackr';
import type { WebSocket } from 'ws';
import type { ServerFrame, WireError } from '../protocol.js';

const packr = new Packr({ useRecords: false });

export const encodeFrame = (frame: ServerFrame): Uint8Array => packr.pack(frame);

export interface LoginState {
  sdkAppID: number;
  userID: string;
  deviceId: string;
}

/** One device socket: what it is logged in as, and its heartbeat timer. */
export class Connection {
  login: LoginState | undefined;
  closed = false;
  /** Set when the server closed the socket on purpose (kick, shutdown): no DISCONNECT follows. */
  closedByServer = false;
  lastHeartbeatForwardedAt = 0;
  /** Requests of one socket run one after another, so a device sees its calls applied in order. */
  queue: Promise<unknown> = Promise.resolve();
  private heartbeatTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly connId: string,
    private readonly socket: WebSocket,
    private readonly onHeartbeatTimeout: (connection: Connection) => void,
  ) {}

  send(frame: ServerFrame): void {
    this.sendEncoded(encodeFrame(frame));
  }

  /** Sends a frame already encoded (the same bytes may go to many sockets). */
  sendEncoded(frame: Uint8Array): void {
    if (!this.closed) this.socket.send(frame);
  }

  fail(id: number, error: WireError): void {
    this.send({ t: 'res', id, ok: false, error });
  }

  /** (Re)starts the timer after which a silent device counts as dropped. */
  touch(timeoutMs: number): void {
    clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = setTimeout(() => this.onHeartbeatTimeout(this), timeoutMs);
    this.heartbeatTimer.unref();
  }

  closeWith(code: number, reason: string): void {
    this.closedByServer = true;
    clearTimeout(this.heartbeatTimer);
    this.socket.close(code, reason);
  }

  markClosed(): void {
    this.closed = true;
    clearTimeout(this.heartbeatTimer);
  }
}
