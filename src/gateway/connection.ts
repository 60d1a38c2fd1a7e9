import { Packr } from 'msgpackr';
import type { WebSocket } from 'ws';
import type { UserStatus } from '../actors/types.js';
import type { ServerFrame, WireError } from '../protocol.js';

const packr = new Packr({ useRecords: false });

export interface LoginState {
  sdkAppID: number;
  userID: string;
  deviceId: string;
}

/**
 * One device socket: what it is logged in as, its heartbeat timer, and the pushes
 * waiting for the end of the tick so that each socket gets one frame per tick.
 */
export class Connection {
  login: LoginState | undefined;
  closed = false;
  /** Set when the server closed the socket on purpose (kick, shutdown): no DISCONNECT follows. */
  closedByServer = false;
  lastHeartbeatForwardedAt = 0;
  /** Requests of one socket run one after another, so a device sees its calls applied in order. */
  queue: Promise<unknown> = Promise.resolve();
  private pushes: UserStatus[] = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly connId: string,
    private readonly socket: WebSocket,
    private readonly onHeartbeatTimeout: (connection: Connection) => void,
  ) {}

  send(frame: ServerFrame): void {
    if (this.closed) return;
    this.socket.send(packr.pack(frame));
  }

  fail(id: number, error: WireError): void {
    this.send({ t: 'res', id, ok: false, error });
  }

  queuePush(statuses: UserStatus[]): void {
    if (this.pushes.length === 0) setImmediate(() => this.flushPushes());
    for (const status of statuses) this.pushes.push(status);
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

  private flushPushes(): void {
    const list = this.pushes;
    this.pushes = [];
    if (list.length) this.send({ t: 'push', list });
  }
}
