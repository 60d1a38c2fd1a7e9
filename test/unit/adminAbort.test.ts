import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../src/actors/index.js';
import { AdminApi, type AdminBackend } from '../../src/admin/adminApi.js';
import type { AppConfig } from '../../src/cluster/stores/apps.js';

const APP = 1400000001;
const KEY = 'admin-key';

let server: Server | undefined;
afterEach(() => server?.close());

/** The admin API on a real HTTP server, over a backend that holds one app and records friend changes. */
async function adminServer() {
  const app: AppConfig = { sdkAppID: APP, secretKey: 'k', edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify: true, limits: DEFAULT_LIMITS };
  const changes: unknown[] = [];
  const backend = {
    getApp: (sdkAppID: number) => (sdkAppID === APP ? app : undefined),
    changeFriends: async (...change: unknown[]) => void changes.push(change),
  } as unknown as AdminBackend;
  const lines: Array<{ level: number; msg: string }> = [];
  let logged: (() => void) | undefined;
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
        logged?.();
        done();
      },
    }),
  );
  const api = new AdminApi(backend, KEY, log);
  server = createServer((request, response) => void api.handle(request, response, request.url!));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  const nextLine = () => new Promise<void>((resolve) => (logged = resolve));
  return { port: address.port, changes, lines, nextLine };
}

describe('admin API', () => {
  it('admin API - a request whose client goes away mid-body changes nothing and is logged as abandoned, not as a failure', async () => {
    const { port, changes, lines, nextLine } = await adminServer();
    const body = JSON.stringify({ add: [['alice', 'bob']] });
    const line = nextLine();
    const client = connect(port, '127.0.0.1', () => {
      client.write(
        `POST /admin/apps/${APP}/friends HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${body.length + 100}\r\n\r\n${body}`,
        () => client.resetAndDestroy(),
      );
    });
    client.on('error', () => undefined);
    await line;
    expect(lines).toEqual([expect.objectContaining({ level: 30, msg: 'admin request abandoned by its client before its body was read' })]);
    expect(changes).toEqual([]);
  });

  it('admin API - the same request sent whole is applied', async () => {
    const { port, changes } = await adminServer();
    const response = await fetch(`http://127.0.0.1:${port}/admin/apps/${APP}/friends`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ add: [['alice', 'bob']] }),
    });
    expect(response.status).toBe(200);
    expect(changes).toEqual([[APP, [['alice', 'bob']], []]]);
  });
});
