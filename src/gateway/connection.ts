import { Packr } from 'msgpackr';
import { WebSocket } from 'ws';
import type { ServerFrame, WireError } from '../protocol.js';
import type { DeviceSocket } from './deviceSocket.js';
import type { Outbox } from './outbox.js';
import { binaryFrame } from './wsFrame.js';
import { IDLE, type Serial } from '../serialQueue.js';

const packr = new Packr({ useRecords: false });

/**
 * Bytes a socket may hold unsent beyond what the kernel took. A device that reads slower than
 * its pushes come is cut off past it, as a drop: it reconnects and reads its statuses again
 * (SPEC.md §3), where buffering for it would grow the node's memory without end.
 */
const MAX_UNSENT_BYTES = 1024 * 1024;

/** A value as msgpack, encoded as every frame to a device is. */
export const encodeForWire = (value: unknown): Uint8Array => packr.pack(value);

/** A server frame as the bytes a socket is sent: msgpack in a binary WebSocket frame. */
export const wireFrame = (frame: ServerFrame): Buffer => binaryFrame([encodeForWire(frame)]);


/** Where a connection's frames are written: the socket under its WebSocket. */
export interface FrameSink {
  write(bytes: Uint8Array): unknown;
}

export interface LoginState {
  sdkAppID: number;
  userID: string;
  deviceId: string;
}

/** One device socket: what it is logged in as, and its heartbeat deadline. */
export class Connection implements Serial {
  login: LoginState | undefined;
  closed = false;
  /** Set when the server closed the socket on purpose (kick, shutdown): no DISCONNECT follows. */
  closedByServer = false;
  lastHeartbeatForwardedAt = 0;
  /**
   * Epoch ms at which the user's actor refused this logged-in connection with 6014 (0: never): it
   * no longer holds the device, and the kick that says so has not come (it may be lost between
   * nodes). The gateway's sweep closes the socket as that kick would have.
   */
  disownedAt = 0;
  /** Requests of one socket run one after another (`runInOrder`), so a device sees its calls applied in order. */
  queue: Promise<unknown> = IDLE;
  /** Calls queued or running on this socket. */
  queued = 0;
  /**
   * Epoch ms after which a silent device counts as dropped; the gateway's sweep closes the
   * socket then. A number, not a timer per socket: a `Timeout` with its arguments held ~200 B
   * more per connection, and re-arming it on every frame cost three times as long.
   */
  deadline = 0;

  /**
   * `sink` is the socket `ws` took over at the upgrade. Frames are written to it directly,
   * framed by `wireFrame`, when the outbox's tick ends; `ws` writes its own frames (close)
   * at once, since permessage-deflate is off. So every close writes what is queued first:
   * `DeviceSocket.close` does, for the server's own (`closeWith`) and those `ws` starts itself.
   */
  constructor(
    readonly connId: string,
    readonly socket: DeviceSocket,
    private readonly sink: FrameSink,
    private readonly outbox: Outbox,
  ) {
    socket.connection = this;
  }

  /** Queues a frame for the end of the tick, behind the frames sent before it. */
  send(frame: ServerFrame): void {
    this.outbox.frame(this, wireFrame(frame));
  }

  /** Writes bytes already framed (the same bytes may go to many sockets) at once. */
  write(bytes: Uint8Array): void {
    // As `ws.send` would: nothing after the close handshake began.
    if (this.closed || this.socket.readyState !== WebSocket.OPEN) return;
    // Checked before the write, so that one large push to a device that keeps up goes out whole.
    // No close frame: it would wait behind what the device does not read.
    if (this.socket.bufferedAmount > MAX_UNSENT_BYTES) return this.socket.terminate();
    this.sink.write(bytes);
  }

  fail(id: number, error: WireError): void {
    this.send({ t: 'res', id, ok: false, error });
  }

  /**
   * Sets (or, with `undefined`, clears) what the socket is logged in as. A refusal of the login
   * before does not carry over: the actor's answer to a heartbeat sent just before a logout may
   * be read just after it, and must not close the socket once it logs in again.
   */
  setLogin(login: LoginState | undefined): void {
    this.login = login;
    this.disownedAt = 0;
  }

  /** Moves the deadline after which a silent device counts as dropped to `timeoutMs` from `now`. */
  touch(timeoutMs: number, now = Date.now()): void {
    this.deadline = now + timeoutMs;
  }

  writeQueuedFrames(): void {
    this.outbox.writeFramesNow(this);
  }

  closeWith(code: number, reason: string): void {
    this.closedByServer = true;
    this.deadline = Infinity;
    this.disownedAt = 0;
    this.socket.close(code, reason);
  }

  markClosed(): void {
    this.closed = true;
    this.deadline = Infinity;
  }
}
