/**
 * One WebSocket carrying msgpack frames: finds a WebSocket class that works where the SDK runs,
 * encodes client frames, decodes server frames. Imports nothing Node-only at load time, so
 * browsers can bundle it; the `ws` package is imported lazily only when no WebSocket exists.
 */
import { Packr } from 'msgpackr';
import { ErrorCode, PresenceError } from '../errors.js';
import type { ClientFrame, ServerFrame } from '../protocol.js';
import type { WebSocketConstructor, WebSocketLike } from './types.js';

/** Plain maps, no msgpackr records: what docs/protocol.md specifies for both sides. */
const packr = new Packr({ useRecords: false });

const OPEN = 1;

/**
 * Node.js 20 has no global WebSocket. The only reference to 'ws' in the SDK lives here, behind
 * a dynamic import that bundlers are told to leave alone, so browser builds never pull it in.
 */
async function importNodeWebSocket(): Promise<WebSocketConstructor> {
  const ws = await import(/* webpackIgnore: true */ /* @vite-ignore */ 'ws');
  return ws.WebSocket;
}

/** The option if given, else the platform's WebSocket, else the `ws` package. */
export async function resolveWebSocket(option?: WebSocketConstructor): Promise<WebSocketConstructor> {
  if (option) return option;
  const native = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  return native ?? importNodeWebSocket();
}

export function encodeFrame(frame: ClientFrame): Uint8Array {
  return packr.pack(frame);
}

/**
 * Turns a message's data into a frame: an ArrayBuffer (browsers, `ws` with binaryType
 * 'arraybuffer') or a Buffer/typed array (`ws` otherwise). Returns undefined for text frames,
 * undecodable bytes and anything without a string `t`; the client ignores those.
 */
export function decodeFrame(data: unknown): ServerFrame | undefined {
  let bytes: Uint8Array;
  if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
  else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  else return undefined;
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  return typeof (value as { t?: unknown }).t === 'string' ? (value as ServerFrame) : undefined;
}

/** What a {@link FrameSocket} reports once open. */
export interface FrameSocketEvents {
  onFrame(frame: ServerFrame): void;
  /** The server or the network closed it; never called after the client's own `close`. */
  onClose(code: number, reason: string): void;
}

const connectFailed = (desc: string): PresenceError => new PresenceError(ErrorCode.REQUEST_TIMEOUT, desc);

/** A WebSocket speaking the frame protocol. Created closed; `open` connects it once. */
export class FrameSocket {
  private ws: WebSocketLike | undefined;
  private closedByClient = false;

  constructor(private readonly events: FrameSocketEvents) {}

  /**
   * Connects within `timeoutMs`. Rejects with 6012 when the socket fails, is closed, or takes too
   * long; with 6017 when the URL is refused by the WebSocket class.
   */
  async open(url: string, option: WebSocketConstructor | undefined, timeoutMs: number): Promise<void> {
    const Ctor = await resolveWebSocket(option);
    if (this.closedByClient) throw connectFailed('connection closed before it opened');
    let ws: WebSocketLike;
    try {
      ws = new Ctor(url);
    } catch (err) {
      throw new PresenceError(ErrorCode.INVALID_PARAMETERS, `bad url ${url}`, undefined, { cause: err });
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    await new Promise<void>((resolve, reject) => {
      let opened = false;
      const timer = setTimeout(() => {
        reject(connectFailed(`could not connect to ${url} within ${timeoutMs} ms`));
        this.close();
      }, timeoutMs);
      ws.addEventListener('open', () => {
        opened = true;
        clearTimeout(timer);
        resolve();
      });
      ws.addEventListener('message', (event) => {
        if (this.closedByClient) return;
        const frame = decodeFrame((event as { data?: unknown }).data);
        if (frame) this.events.onFrame(frame);
      });
      ws.addEventListener('close', (event) => {
        const { code = 1006, reason = '' } = event as { code?: number; reason?: string };
        clearTimeout(timer);
        if (!opened) reject(connectFailed(`could not connect to ${url} (close code ${code})`));
        else if (!this.closedByClient) this.events.onClose(code, reason);
        this.closedByClient = true;
      });
      // A close event always follows an error; listening here also keeps `ws` from throwing it.
      ws.addEventListener('error', () => {});
    });
  }

  get isOpen(): boolean {
    return !this.closedByClient && this.ws?.readyState === OPEN;
  }

  /** Sends one frame; false when the socket is not open (the frame is not sent). */
  send(frame: ClientFrame): boolean {
    if (!this.isOpen || !this.ws) return false;
    this.ws.send(encodeFrame(frame));
    return true;
  }

  /** Closes without reporting `onClose`. Idempotent; also aborts an `open` in progress. */
  close(code = 1000, reason = ''): void {
    if (this.closedByClient) return;
    this.closedByClient = true;
    try {
      this.ws?.close(code, reason);
    } catch {
      // Closing a socket that is still connecting may throw in some implementations; it is gone either way.
    }
  }
}
