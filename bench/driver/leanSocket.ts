/**
 * A lean device: one `ws` socket speaking the frame protocol of docs/protocol.md directly
 * (msgpack plain maps, `{ t: 'req', id, op, args }` → `{ t: 'res', id, ... }`, `{ t: 'push', list }`),
 * without the SDK's reconnects, listeners and version tracking, so that one driver process can hold
 * many thousands of them.
 */
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import type { UserStatus } from '../../src/actors/types.js';
import type { WireError } from '../../src/protocol.js';

const packr = new Packr({ useRecords: false });

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
  private ws: WebSocket | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  open = false;
  /** One request of the storm in flight on this socket at a time. */
  busy = false;

  constructor(readonly index: number, readonly userID: string, private readonly events: SocketEvents) {}

  connect(url: string, timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      this.ws = ws;
      ws.binaryType = 'nodebuffer';
      const timer = setTimeout(() => {
        reject(new Error(`connect to ${url} timed out`));
        ws.terminate();
      }, timeoutMs);
      ws.once('open', () => {
        clearTimeout(timer);
        this.open = true;
        resolve();
      });
      ws.on('message', (data: Buffer) => this.onMessage(data));
      ws.once('close', (code: number) => {
        clearTimeout(timer);
        const wasOpen = this.open;
        this.open = false;
        this.failPending('socket closed');
        if (wasOpen) this.events.onClose(this, code);
        else reject(new Error(`connect to ${url} failed (close ${code})`));
      });
      ws.on('error', () => {
        // A close follows.
      });
    });
  }

  request(op: string, args: unknown): Promise<Answer> {
    if (!this.open || !this.ws) return Promise.resolve(closedAnswer('socket not open'));
    const id = this.nextId++;
    return new Promise<Answer>((resolve) => {
      this.pending.set(id, { resolve, sentAt: Date.now() });
      this.ws!.send(packr.pack({ t: 'req', id, op, args }));
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
    this.ws?.terminate();
  }

  close(): void {
    try {
      this.ws?.close(1000);
    } catch {
      this.ws?.terminate();
    }
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
