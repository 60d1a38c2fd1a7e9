/**
 * A lean device: one TCP socket speaking RFC 6455 and the frame protocol of docs/protocol.md
 * directly (msgpack plain maps, `{ t: 'req', id, op, args }` → `{ t: 'res', id, ... }`,
 * `{ t: 'push', list }`), without the SDK's reconnects, listeners and version tracking, and
 * without a WebSocket library's per-socket machinery (an HTTP client request per handshake, a
 * receiver and a sender per socket), so that one driver process can hold many thousands of
 * them and leaves the cores to the server it measures.
 */
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { Packr } from 'msgpackr';
import type { UserStatus } from '../../src/actors/types.js';
import type { WireError } from '../../src/protocol.js';

const packr = new Packr({ useRecords: false });

/** One handshake key for every socket: the server only proves it read it, by hashing it. */
const KEY = randomBytes(16).toString('base64');
const ACCEPT = createHash('sha1').update(`${KEY}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');

const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;
/** No status code in a close frame, or no close frame at all (RFC 6455, 7.1.5). */
const CLOSED_WITHOUT_CODE = 1005;
const CLOSED_ABNORMALLY = 1006;

/**
 * The loopback address device `index` connects from, on Linux, where all of 127.0.0.0/8 is
 * loopback. From 127.0.0.1 alone, every device's connection to the node's one port needs its
 * own ephemeral port, and the kernel's search for a free one in `connect()` took ~60 % of the
 * drivers' CPU at N=19 000 (the login storm's rate fell with it). Elsewhere, or towards a node
 * that is not on 127.0.0.1, the kernel picks the source address as usual.
 */
function sourceAddress(host: string, index: number): { localAddress?: string } {
  if (process.platform !== 'linux' || host !== '127.0.0.1') return {};
  return { localAddress: `127.0.${(index >>> 8) & 255}.${index & 255 || 1}` };
}

/** Client frames must be masked; masks come from a pool refilled with random bytes. */
const masks = Buffer.alloc(4096);
let maskAt = masks.length;
function nextMask(): Buffer {
  if (maskAt === masks.length) {
    randomFillSync(masks);
    maskAt = 0;
  }
  maskAt += 4;
  return masks.subarray(maskAt - 4, maskAt);
}

/** A masked client frame of `opcode` carrying `payload` (under 64 KiB: the driver's frames are small). */
function clientFrame(opcode: number, payload: Uint8Array): Buffer {
  if (payload.length >= 65_536) throw new Error(`a ${payload.length}-byte frame is more than the driver sends`);
  const head = payload.length < 126 ? 2 : 4;
  const frame = Buffer.allocUnsafe(head + 4 + payload.length);
  frame[0] = 0x80 | opcode;
  if (head === 2) frame[1] = 0x80 | payload.length;
  else {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(payload.length, 2);
  }
  const mask = nextMask();
  mask.copy(frame, head);
  const at = head + 4;
  for (let i = 0; i < payload.length; i++) frame[at + i] = payload[i]! ^ mask[i & 3]!;
  return frame;
}

export interface Answer {
  ok: boolean;
  result?: Record<string, unknown>;
  error?: WireError;
}

interface Pending {
  resolve(answer: Answer): void;
  sentAt: number;
}

export interface SocketEvents {
  onPush(socket: LeanSocket, list: UserStatus[]): void;
  onClose(socket: LeanSocket, code: number): void;
}

/** What a request resolves with when the socket closed or the answer never came. */
export const closedAnswer = (desc: string): Answer => ({ ok: false, error: { code: 6012, desc } });

export class LeanSocket {
  private socket: Socket | undefined;
  /** Bytes read and not yet a whole frame (or, before the upgrade, a whole response head). */
  private input: Buffer = Buffer.alloc(0);
  private upgraded = false;
  /** This side's close frame went out: nothing may follow it, not even an echo of the server's. */
  private closeSent = false;
  private closeCode = CLOSED_ABNORMALLY;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  open = false;
  /** One request of the storm in flight on this socket at a time. */
  busy = false;

  constructor(readonly index: number, readonly userID: string, private readonly events: SocketEvents) {}

  connect(url: string, timeoutMs = 30_000): Promise<void> {
    const { hostname, port, pathname, search } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = connect({ host: hostname, port: Number(port), noDelay: true, ...sourceAddress(hostname, this.index) });
      this.socket = socket;
      const timer = setTimeout(() => {
        reject(new Error(`connect to ${url} timed out`));
        socket.destroy();
      }, timeoutMs);
      socket.once('connect', () => {
        socket.write(
          `GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
      });
      socket.on('data', (chunk: Buffer) => {
        this.input = this.input.length ? Buffer.concat([this.input, chunk]) : chunk;
        if (!this.upgraded) {
          const end = this.input.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = this.input.subarray(0, end).toString('latin1');
          this.input = this.input.subarray(end + 4);
          if (!head.startsWith('HTTP/1.1 101') || !head.includes(ACCEPT)) {
            socket.destroy();
            return;
          }
          clearTimeout(timer);
          this.upgraded = true;
          this.open = true;
          resolve();
        }
        this.readFrames();
      });
      socket.on('error', () => {
        // A close follows.
      });
      socket.once('close', () => {
        clearTimeout(timer);
        const wasOpen = this.open;
        this.open = false;
        this.failPending('socket closed');
        if (wasOpen) this.events.onClose(this, this.closeCode);
        else if (!this.upgraded) reject(new Error(`connect to ${url} failed (close ${this.closeCode})`));
      });
    });
  }

  request(op: string, args: unknown): Promise<Answer> {
    if (!this.open || !this.socket) return Promise.resolve(closedAnswer('socket not open'));
    const id = this.nextId++;
    return new Promise<Answer>((resolve) => {
      this.pending.set(id, { resolve, sentAt: Date.now() });
      this.socket!.write(clientFrame(OP_BINARY, packr.pack({ t: 'req', id, op, args })));
    });
  }

  /** Fails requests older than `timeoutMs` (called by the driver's sweeper). */
  expire(now: number, timeoutMs: number): void {
    for (const [id, pending] of this.pending) {
      if (now - pending.sentAt < timeoutMs) continue;
      this.pending.delete(id);
      pending.resolve(closedAnswer(`no answer in ${timeoutMs} ms`));
    }
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Destroys the TCP connection without a close handshake: a drop. */
  terminate(): void {
    this.socket?.destroy();
  }

  /** Starts the close handshake; the server answers with its close frame and ends the connection. */
  close(): void {
    if (!this.socket || this.socket.destroyed) return;
    if (!this.upgraded) {
      this.socket.destroy();
      return;
    }
    if (this.closeSent) return;
    const code = Buffer.alloc(2);
    code.writeUInt16BE(1000);
    this.closeSent = true;
    this.open = false;
    this.socket.write(clientFrame(OP_CLOSE, code));
  }

  /**
   * Takes every whole frame off the input. The server sends each message as one unmasked
   * frame: a masked or fragmented one is a protocol error, and the socket is dropped.
   */
  private readFrames(): void {
    let input = this.input;
    while (input.length >= 2) {
      if ((input[0]! & 0x80) === 0 || (input[1]! & 0x80) !== 0) {
        this.socket!.destroy();
        return;
      }
      const opcode = input[0]! & 0x0f;
      let length = input[1]! & 0x7f;
      let at = 2;
      if (length === 126) {
        if (input.length < 4) break;
        length = input.readUInt16BE(2);
        at = 4;
      } else if (length === 127) {
        if (input.length < 10) break;
        length = Number(input.readBigUInt64BE(2));
        at = 10;
      }
      if (input.length < at + length) break;
      const payload = input.subarray(at, at + length);
      input = input.subarray(at + length);
      if (opcode === OP_BINARY) this.onMessage(payload);
      else if (opcode === OP_PING) this.socket!.write(clientFrame(OP_PONG, payload));
      else if (opcode === OP_CLOSE) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : CLOSED_WITHOUT_CODE;
        if (this.closeSent) this.socket!.end();
        else this.socket!.end(clientFrame(OP_CLOSE, payload.subarray(0, 2)));
        this.closeSent = true;
      }
    }
    // A partial frame is copied out, so the socket's read chunk it came in is not kept alive.
    this.input = input.length ? Buffer.from(input) : input;
  }

  private onMessage(data: Buffer): void {
    let frame: { t?: string; id?: number; ok?: boolean; result?: Record<string, unknown>; error?: WireError; list?: UserStatus[] };
    try {
      frame = packr.unpack(data);
    } catch {
      return;
    }
    if (frame.t === 'push') {
      this.events.onPush(this, frame.list ?? []);
    } else if (frame.t === 'res') {
      const pending = this.pending.get(frame.id!);
      if (!pending) return;
      this.pending.delete(frame.id!);
      pending.resolve(frame.ok ? { ok: true, result: frame.result ?? {} } : { ok: false, error: frame.error! });
    }
  }

  private failPending(desc: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const pending of all) pending.resolve(closedAnswer(desc));
  }
}
