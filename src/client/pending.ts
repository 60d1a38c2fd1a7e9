/**
 * Calls waiting for their answers: picks request ids, runs each call's timeout from the moment
 * it is made, and remembers which calls were sent so that a lost connection can fail those
 * (their answers will never come) while keeping the unsent ones queued for the next connection.
 */
import { ErrorCode, PresenceError } from '../errors.js';
import type { ClientFrame, Operation, WireError } from '../protocol.js';

type RequestFrame = Extract<ClientFrame, { t: 'req' }>;

interface PendingCall {
  frame: RequestFrame;
  sent: boolean;
  resolve(result: unknown): void;
  reject(error: PresenceError): void;
  timer: ReturnType<typeof setTimeout>;
}

export class PendingRequests {
  private nextId = 1;
  private readonly calls = new Map<number, PendingCall>();

  constructor(private readonly timeoutMs: number) {}

  /**
   * Registers a call and starts its timeout (6012). The call is not sent: the caller sends
   * `frame` and then marks it with {@link markSent}.
   */
  create(op: Operation, args: unknown): { frame: RequestFrame; result: Promise<unknown> } {
    const id = this.nextId;
    // Ids stay positive integers (docs/protocol.md) even in a client that runs for years.
    this.nextId = id >= Number.MAX_SAFE_INTEGER ? 1 : id + 1;
    const frame: RequestFrame = { t: 'req', id, op, args };
    const result = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(new PresenceError(ErrorCode.REQUEST_TIMEOUT, `${op} got no answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.calls.set(id, { frame, sent: false, resolve, reject, timer });
    });
    return { frame, result };
  }

  markSent(id: number): void {
    const call = this.calls.get(id);
    if (call) call.sent = true;
  }

  /** The calls not sent yet, oldest first. */
  unsent(): RequestFrame[] {
    return [...this.calls.values()].filter((call) => !call.sent).map((call) => call.frame);
  }

  /** Settles call `id` with the server's answer; answers to unknown (timed-out) ids are ignored. */
  settle(id: number, ok: boolean, result: unknown, error: WireError | undefined): void {
    const call = this.take(id);
    if (!call) return;
    if (ok) call.resolve(result);
    else call.reject(toPresenceError(error));
  }

  /** Fails one call, e.g. one that could not be sent. */
  fail(id: number, error: PresenceError): void {
    this.take(id)?.reject(error);
  }

  /** Fails the calls already sent (the connection carrying them is gone); keeps the queued ones. */
  failSent(error: PresenceError): void {
    for (const [id, call] of this.calls) if (call.sent) this.fail(id, error);
  }

  /**
   * The server closed with 1001 after answering every call it ran: the calls sent but
   * unanswered were never run, so they go out again on the next connection. A login
   * fails instead: the reconnect logs in by itself.
   */
  unsendSent(loginError: PresenceError): void {
    for (const [id, call] of this.calls) {
      if (!call.sent) continue;
      if (call.frame.op === 'login') this.fail(id, loginError);
      else call.sent = false;
    }
  }

  /** Fails every call, sent or queued. */
  failAll(error: PresenceError): void {
    for (const id of [...this.calls.keys()]) this.fail(id, error);
  }

  private take(id: number): PendingCall | undefined {
    const call = this.calls.get(id);
    if (!call) return undefined;
    this.calls.delete(id);
    clearTimeout(call.timer);
    return call;
  }
}

/** The server's `{ code, desc, retryAfterMs? }` as a PresenceError; 70500 when malformed. */
export function toPresenceError(error: WireError | undefined): PresenceError {
  if (!error || typeof error.code !== 'number') {
    return new PresenceError(ErrorCode.INTERNAL_ERROR, 'malformed error answer');
  }
  const desc = typeof error.desc === 'string' ? error.desc : '';
  const retryAfterMs = typeof error.retryAfterMs === 'number' ? error.retryAfterMs : undefined;
  return new PresenceError(error.code, desc, retryAfterMs);
}
