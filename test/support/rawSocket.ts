import { Packr } from 'msgpackr';
import { WebSocket } from 'ws';
import type { WireError } from '../../src/protocol.js';

/** How long a raw socket waits for an expected frame or close before it fails with what it saw. */
export const FRAME_TIMEOUT_MS = 10_000;

/** Plain maps, no records: what docs/protocol.md specifies. */
const packr = new Packr({ useRecords: false });

/** Any frame the server sent, decoded (or `{ t: 'undecodable' }` when it was not msgpack). */
export type AnyFrame = { t: string; [key: string]: unknown };

export interface RawResponse {
  t: 'res';
  id: number;
  ok: boolean;
  result?: Record<string, unknown>;
  error?: WireError;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

/**
 * A bare WebSocket speaking the device protocol by hand, for protocol-level tests: it sends
 * arbitrary bytes, text or frames, and waits for the frames and the close the server answers with.
 * Every frame received is kept in `frames`, in order.
 */
export class RawSocket {
  readonly frames: AnyFrame[] = [];
  /** Set once the socket closed, by either side. */
  closeInfo: CloseInfo | undefined;
  private consumed = 0;
  private nextId = 1;
  private waiters: Array<() => void> = [];

  private constructor(private readonly ws: WebSocket, readonly url: string) {
    ws.on('message', (data, isBinary) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      let frame: AnyFrame;
      try {
        frame = isBinary ? (packr.unpack(bytes) as AnyFrame) : { t: 'text', text: bytes.toString('utf8') };
      } catch {
        frame = { t: 'undecodable', bytes: bytes.toString('hex') };
      }
      this.frames.push(frame);
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString('utf8') };
      this.wake();
    });
    ws.on('error', () => {
      // A close event follows every error; the test reads closeInfo.
    });
  }

  /** Opens a socket to a device endpoint (`ws://host:port/ws`). */
  static async open(url: string): Promise<RawSocket> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new RawSocket(ws, url);
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends bytes as one binary frame, as they are. */
  sendBytes(bytes: Uint8Array): void {
    this.ws.send(bytes, { binary: true });
  }

  /** Sends one text frame. */
  sendText(text: string): void {
    this.ws.send(text, { binary: false });
  }

  /** Encodes any value with msgpack (plain maps) and sends it as one binary frame. */
  send(value: unknown): void {
    this.sendBytes(packr.pack(value));
  }

  /** Sends `{ t: 'req', id, op, args }` with a fresh id (unless given) and returns the id. */
  sendRequest(op: string, args?: unknown, id = this.nextId++): number {
    this.send(args === undefined ? { t: 'req', id, op } : { t: 'req', id, op, args });
    return id;
  }

  /** Sends a request and resolves with its `res` frame (ok or not). */
  async request(op: string, args?: unknown): Promise<RawResponse> {
    const id = this.sendRequest(op, args);
    return this.response(id);
  }

  /** Waits for the `res` frame answering `id`. */
  async response(id: number, timeoutMs = FRAME_TIMEOUT_MS): Promise<RawResponse> {
    return (await this.nextFrame((f) => f.t === 'res' && f.id === id, `the answer to request ${id}`, timeoutMs)) as unknown as RawResponse;
  }

  /** Waits for the next `{ t: 'err' }` frame. */
  async nextError(timeoutMs = FRAME_TIMEOUT_MS): Promise<WireError> {
    return (await this.nextFrame((f) => f.t === 'err', 'an err frame', timeoutMs)).error as WireError;
  }

  /**
   * Resolves with the first frame not yet consumed that matches (default: anything but pushes
   * and heartbeat answers); frames before it stay in `frames` but are passed over.
   */
  async nextFrame(
    match: (frame: AnyFrame) => boolean = (f) => f.t !== 'push' && f.t !== 'hb',
    what = 'a frame',
    timeoutMs = FRAME_TIMEOUT_MS,
  ): Promise<AnyFrame> {
    let found: AnyFrame | undefined;
    const take = (): boolean => {
      for (let i = this.consumed; i < this.frames.length; i++) {
        if (match(this.frames[i]!)) {
          found = this.frames[i];
          this.consumed = i + 1;
          return true;
        }
      }
      return false;
    };
    await this.until(() => take() || this.closeInfo !== undefined, what, timeoutMs);
    if (!found && !take()) {
      throw new Error(`socket closed (${JSON.stringify(this.closeInfo)}) while waiting for ${what}; frames: ${this.describeFrames()}`);
    }
    return found!;
  }

  /** Sends a heartbeat and waits for the answer: proof the connection still works. */
  async heartbeat(timeoutMs = FRAME_TIMEOUT_MS): Promise<void> {
    this.send({ t: 'hb' });
    await this.nextFrame((f) => f.t === 'hb', 'a heartbeat answer', timeoutMs);
  }

  /** Waits until the server (or the network) closes the socket. */
  async closed(timeoutMs = FRAME_TIMEOUT_MS): Promise<CloseInfo> {
    await this.until(() => this.closeInfo !== undefined, 'the socket to close', timeoutMs);
    return this.closeInfo!;
  }

  close(): void {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
  }

  /** Kills the TCP connection without a close handshake, like a lost network. */
  terminate(): void {
    this.ws.terminate();
  }

  private describeFrames(): string {
    return JSON.stringify(this.frames).slice(0, 2_000);
  }

  private async until(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
    if (condition()) return;
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!condition()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} on ${this.url}; frames: ${this.describeFrames()}`));
      }, timeoutMs);
      this.waiters.push(check);
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
