import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One webhook request as the app server saw it. */
export interface Received {
  body: Record<string, any>;
  raw: string;
  signature: string;
  idempotencyKey: string;
  /** The request's path and query. */
  target: string;
}

/** The app server of a webhook test: records every request; `down()` makes it refuse connections until started again on its port. */
export class WebhookReceiver {
  readonly received: Received[] = [];
  private server: Server | undefined;
  port = 0;

  async start(port = 0): Promise<void> {
    this.server = createServer((request, response) => {
      let raw = '';
      request.setEncoding('utf8').on('data', (chunk: string) => (raw += chunk));
      request.on('end', () => {
        this.received.push({
          body: JSON.parse(raw),
          raw,
          signature: String(request.headers['x-presence-signature']),
          idempotencyKey: String(request.headers['idempotency-key']),
          target: request.url ?? '',
        });
        response.writeHead(200, { 'content-type': 'application/json' }).end('{"ActionStatus":"OK","ErrorCode":0}');
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async down(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/presence-callback`;
  }

  of(userID: string): Received[] {
    return this.received.filter((r) => r.body.Info?.To_Account === userID);
  }

  async until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const giveUpAt = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > giveUpAt) throw new Error(`timed out waiting for ${what}; received ${JSON.stringify(this.received.map((r) => r.body))}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
