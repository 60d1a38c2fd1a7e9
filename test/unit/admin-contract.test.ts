import { createServer, request as httpRequest, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../src/actors/index.js';
import { AdminApi, type AdminBackend } from '../../src/admin/adminApi.js';
import type { AppConfig } from '../../src/cluster/stores/apps.js';
import { createLogger } from '../../src/log.js';

const APP = 1400000001;
const KEY = 'admin-key';
const log = createLogger({ level: 'silent' });

let server: Server | undefined;
afterEach(() => {
  server?.closeAllConnections();
  server?.close();
});

/** The admin API on a real HTTP server, over a backend that holds one app and records what it is asked. */
async function adminServer(adminKey = KEY, overrides: Partial<AdminBackend> = {}) {
  const app: AppConfig = { sdkAppID: APP, secretKey: 'secret-key-0123456789', edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify: true, limits: DEFAULT_LIMITS };
  const calls: string[] = [];
  let unsubscribed!: () => void;
  const watchEnded = new Promise<void>((resolve) => (unsubscribed = resolve));
  const backend = {
    getApp: (sdkAppID: number) => (sdkAppID === APP ? app : undefined),
    changeFriends: async () => void calls.push('changeFriends'),
    putApp: async (stored: AppConfig) => {
      calls.push('putApp');
      return stored;
    },
    clusterView: async () => ({ nodes: [] }),
    inspect: async () => ({ state: 'unlogined' }),
    watchTransitions: () => {
      calls.push('watch');
      return {
        unsubscribe: () => {
          calls.push('unsubscribe');
          unsubscribed();
        },
      };
    },
    ...overrides,
  } as unknown as AdminBackend;
  const api = new AdminApi(backend, adminKey, log);
  server = createServer((request, response) => void api.handle(request, response, request.url!));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return { port: address.port, calls, watchEnded };
}

describe('admin contract', () => {
  it('admin contract - a body over the size limit is answered 400 with 6017, not with a reset connection', async () => {
    const { port, calls } = await adminServer();
    const body = Buffer.alloc(2 * 1024 * 1024, 'a');
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const request = httpRequest(
        { port, host: '127.0.0.1', method: 'POST', path: `/admin/apps/${APP}/friends`, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'content-length': body.length } },
        (response) => {
          let text = '';
          response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
          response.on('end', () => resolve({ status: response.statusCode!, body: text }));
        },
      );
      request.on('error', reject);
      request.end(body);
    });
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toMatchObject({ code: 6017 });
    expect(calls).toEqual([]);
  });

  it.each(['secretKey', 'edition', 'userStatusEnabled', 'friendStatusAutoNotify'])(
    'admin contract - PUT with %s: null is refused with 400 6017, as a null limit is, and keeps the app',
    async (field) => {
      const { port, calls } = await adminServer();
      const response = await fetch(`http://127.0.0.1:${port}/admin/apps/${APP}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ [field]: null }),
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ code: 6017 });
      expect(calls).toEqual([]);
    },
  );

  it('admin contract - an empty admin key opens nothing: every request is refused with 401 6014', async () => {
    const { port } = await adminServer('');
    for (const headers of [{}, { authorization: 'Bearer ' }, { authorization: '' }] as Array<Record<string, string>>) {
      const response = await fetch(`http://127.0.0.1:${port}/admin/cluster`, { headers });
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ code: 6014 });
    }
  });

  it('admin contract - a live user view keeps its watch while the viewer is connected and drops it when the viewer leaves', async () => {
    const { port, calls, watchEnded } = await adminServer();
    const viewer = new AbortController();
    const response = await fetch(`http://127.0.0.1:${port}/admin/apps/${APP}/users/alice/events`, {
      headers: { authorization: `Bearer ${KEY}` },
      signal: viewer.signal,
    });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('event: inspection');
    expect(calls).toEqual(['watch']);
    viewer.abort();
    await watchEnded;
    expect(calls).toEqual(['watch', 'unsubscribe']);
  });

  it('admin contract - a transition seen while the first read of a live view is pending follows the headers and that read', async () => {
    let emit!: (record: unknown) => void;
    let answerFirstRead!: (inspection: unknown) => void;
    let asked!: () => void;
    const firstReadAsked = new Promise<void>((resolve) => (asked = resolve));
    const { port } = await adminServer(KEY, {
      watchTransitions: (_app, _user, handler) => {
        emit = handler as (record: unknown) => void;
        return { unsubscribe: () => undefined };
      },
      inspect: () => {
        asked();
        return new Promise((resolve) => (answerFirstRead = resolve as (inspection: unknown) => void)) as ReturnType<AdminBackend['inspect']>;
      },
    });
    const viewer = new AbortController();
    const answer = fetch(`http://127.0.0.1:${port}/admin/apps/${APP}/users/alice/events`, { headers: { authorization: `Bearer ${KEY}` }, signal: viewer.signal });
    await firstReadAsked;
    emit({ event: 'LOGIN', to: 'online' });
    answerFirstRead({ state: 'online' });
    const response = await answer;
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const reader = response.body!.getReader();
    let text = '';
    while (!text.includes('event: transition')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text.indexOf('event: inspection')).toBeGreaterThanOrEqual(0);
    expect(text.indexOf('event: inspection')).toBeLessThan(text.indexOf('event: transition'));
    viewer.abort();
  });
});
