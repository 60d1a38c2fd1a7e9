import { Packr } from 'msgpackr';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import {
  UserStatusType,
  type ConnectionState,
  type PresenceClient,
  type PresenceError,
  type UserStatus,
} from '../../src/client/index.js';
import type { ClientFrame, ServerFrame, WireError } from '../../src/protocol.js';

/** The client SDK's unit tests' stand-in for the gateway, and what they record of a client. */

export const packr = new Packr({ useRecords: false });
export const SDK_APP_ID = 1400000001;

export const status = (userID: string, version: number, customStatus = ''): UserStatus => ({
  userID,
  statusType: UserStatusType.ONLINE,
  customStatus,
  version,
  lastSeenAt: 0,
});

/** Re-checks waiting conditions whenever the server or a client reports something. */
export class Changes {
  private readonly waiters = new Set<() => void>();
  notify(): void {
    for (const check of [...this.waiters]) check();
  }
  until(condition: () => boolean): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (!condition()) return;
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }
}

export type Request = Extract<ClientFrame, { t: 'req' }>;
export type Answer = { result: unknown } | { error: WireError } | 'no answer';
export interface Received { conn: number; frame: ClientFrame }

export function defaultAnswer(req: Request, conn: number): Answer {
  const args = (req.args ?? {}) as Record<string, unknown>;
  switch (req.op) {
    case 'login':
      return {
        result: {
          deviceId: (args.deviceId as string | undefined) ?? `auto-${conn}`,
          heartbeatIntervalMs: 30_000,
          heartbeatTimeoutMs: 400_000,
          status: status(args.userID as string, 1),
        },
      };
    case 'getUserStatus':
      return { result: { statuses: (args.userIDList as string[]).map((id) => ({ ...status(id, 0), statusType: UserStatusType.UNLOGINED })) } };
    case 'subscribeUserStatus':
      return { result: { evicted: [] } };
    default:
      return { result: {} };
  }
}

/** A tiny stand-in for the gateway: records every frame and answers through `answer`. */
export class TestServer {
  readonly received: Received[] = [];
  readonly sockets: WebSocket[] = [];
  readonly closedConns = new Set<number>();
  answer: (req: Request, conn: number) => Answer = defaultAnswer;

  private constructor(private readonly wss: WebSocketServer, readonly changes: Changes) {
    wss.on('connection', (ws) => {
      const conn = this.sockets.push(ws) - 1;
      ws.on('message', (data: Buffer) => {
        const frame = packr.unpack(data) as ClientFrame;
        this.received.push({ conn, frame });
        if (frame.t === 'req') {
          const answer = this.answer(frame, conn);
          if (answer !== 'no answer') {
            this.send(conn, 'result' in answer
              ? { t: 'res', id: frame.id, ok: true, result: answer.result }
              : { t: 'res', id: frame.id, ok: false, error: answer.error });
          }
        }
        changes.notify();
      });
      ws.on('close', () => {
        this.closedConns.add(conn);
        changes.notify();
      });
      changes.notify();
    });
  }

  static async start(changes: Changes): Promise<TestServer> {
    const wss = new WebSocketServer({ port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    return new TestServer(wss, changes);
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}/ws`;
  }

  send(conn: number, frame: ServerFrame): void {
    this.sockets[conn]?.send(packr.pack(frame));
  }

  requests(op: string): Array<{ conn: number; frame: Request }> {
    return this.received.filter((r): r is { conn: number; frame: Request } => r.frame.t === 'req' && r.frame.op === op);
  }

  async stop(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/** Everything the client told its listener. */
export function record(client: PresenceClient, changes: Changes) {
  const events = { statuses: [] as UserStatus[][], states: [] as ConnectionState[], kicked: [] as PresenceError[] };
  client.addListener({
    onUserStatusChanged(list) { events.statuses.push(list); changes.notify(); },
    onConnectionStateChanged(state) { events.states.push(state); changes.notify(); },
    onKickedOffline(error) { events.kicked.push(error); changes.notify(); },
  });
  return events;
}
