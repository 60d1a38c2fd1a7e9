import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UserStatusType, type UserStatus } from '../../src/actors/types.js';
import { createLogger } from '../../src/log.js';
import { WebhookDispatcher, type PendingWebhook, type WebhookDispatcherDeps } from '../../src/webhooks/dispatcher.js';
import { stateChangeEvent, type WebhookEvent } from '../../src/webhooks/stateChange.js';

const APP = 1400000001;
const log = createLogger({ level: 'silent' });
const status = (userID: string, version: number): UserStatus => ({ userID, statusType: UserStatusType.ONLINE, customStatus: `v${version}`, version, lastSeenAt: 0 });
const eventOf = (userID: string, version: number): WebhookEvent => stateChangeEvent(APP, status(userID, version - 1), status(userID, version), [], version)!;

/** A deferred answer of the receiver, settled by the test. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Outboxes per user, and a receiver whose every POST waits for the test to answer it. */
function setup(overrides: Partial<WebhookDispatcherDeps> = {}) {
  const outboxes = new Map<string, WebhookEvent[]>();
  const answers: Array<{ key: string; answer: (status: number) => void }> = [];
  let posted: (() => void) | undefined;
  const dispatcher = new WebhookDispatcher({
    next: (key): PendingWebhook | undefined => {
      const event = outboxes.get(key)?.[0];
      return event && { event, url: 'http://receiver.test/hook', secretKey: 'secret-key-0123456789' };
    },
    delivered: async (key, id) => {
      const outbox = outboxes.get(key);
      if (outbox?.[0]?.id === id) outbox.shift();
    },
    log,
    post: (_url, body) => {
      const answer = deferred<number>();
      answers.push({ key: JSON.parse(body).Info.To_Account as string, answer: answer.resolve });
      posted?.();
      return answer.promise;
    },
    ...overrides,
  });
  const add = (key: string, versions: number[]) => outboxes.set(key, versions.map((v) => eventOf(key, v)));
  /** Resolves once `n` POSTs in all were started. */
  const posts = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (answers.length >= n) resolve();
      };
      posted = check;
      check();
    });
  return { dispatcher, outboxes, answers, add, posts };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('webhooks contract - timers and state', () => {
  it('webhooks contract - a POST that fails after stop() arms no retry timer', async () => {
    vi.useFakeTimers();
    const { dispatcher, answers, add, posts } = setup();
    add('alice', [1]);
    dispatcher.kick('alice');
    await posts(1);
    dispatcher.stop(); // the node goes away while the receiver is still answering
    answers[0]!.answer(503);
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('webhooks contract - a user cancelled while its POST is under way leaves no timer and no failing state', async () => {
    vi.useFakeTimers();
    const { dispatcher, outboxes, answers, add, posts } = setup();
    add('alice', [1]);
    dispatcher.kick('alice');
    await posts(1);
    outboxes.delete('alice'); // the actor left this node: its outbox is the next owner's now
    dispatcher.cancel('alice');
    answers[0]!.answer(503);
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(dispatcher.stateOf('alice')).toBeUndefined();
    expect(dispatcher.failingUsers).toBe(0);
  });

  it('webhooks contract - a failing user whose outbox is gone at the retry (callbackUrl removed) stops counting as failing', async () => {
    vi.useFakeTimers();
    const { dispatcher, outboxes, answers, add, posts } = setup();
    add('alice', [1]);
    dispatcher.kick('alice');
    await posts(1);
    answers[0]!.answer(500);
    await vi.advanceTimersByTimeAsync(0);
    expect(dispatcher.failingUsers).toBe(1);
    outboxes.delete('alice'); // next() has nothing to send any more
    await vi.advanceTimersByTimeAsync(1_200);
    expect(answers).toHaveLength(1);
    expect(dispatcher.stateOf('alice')).toBeUndefined();
    expect(dispatcher.failingUsers).toBe(0);
  });
});

describe('webhooks contract - a slow receiver', () => {
  it('webhooks contract - POSTs under way at once are bounded, and every user is still delivered in order', async () => {
    const { dispatcher, outboxes, answers, add, posts } = setup();
    const users = Array.from({ length: 300 }, (_, i) => `user${i}`);
    for (const user of users) add(user, [1, 2]);
    for (const user of users) dispatcher.kick(user);
    await posts(1);
    await new Promise((resolve) => setImmediate(resolve));
    // A slow receiver must not get one connection per user with a change (sockets, memory).
    expect(answers.length).toBeLessThanOrEqual(64);
    // Answering what is under way lets the rest go, each user's events oldest first.
    const seen = new Map<string, number[]>();
    for (let answered = 0; answered < users.length * 2; answered++) {
      await posts(answered + 1);
      const { key, answer } = answers[answered]!;
      seen.set(key, [...(seen.get(key) ?? []), outboxes.get(key)![0]!.body.Version]);
      answer(200);
    }
    await vi.waitFor(() => expect([...outboxes.values()].every((o) => o.length === 0)).toBe(true));
    for (const user of users) expect(seen.get(user)).toEqual([1, 2]);
  });
});

describe('webhooks contract - the default HTTP client', () => {
  let server: Server | undefined;
  afterEach(() => {
    server?.closeAllConnections();
    server?.close();
  });

  it('webhooks contract - a 2xx whose body never ends is delivered at once, and its body is not buffered', async () => {
    let written = 0;
    let closed!: () => void;
    const receiverClosed = new Promise<void>((resolve) => (closed = resolve));
    server = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        response.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 1);
        const pump = () => {
          while (!response.destroyed && written < 64 * 1024 * 1024 && response.write(chunk)) written += chunk.length;
        };
        response.on('drain', pump);
        response.on('close', closed);
        pump();
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const outbox = [eventOf('alice', 1)];
    const delivered = deferred<string>();
    const dispatcher = new WebhookDispatcher({
      next: () => (outbox[0] ? { event: outbox[0], url, secretKey: 'secret-key-0123456789' } : undefined),
      delivered: async (_key, id) => {
        outbox.shift();
        delivered.resolve(id);
      },
      log,
      timeoutMs: 60_000,
    });
    dispatcher.kick('alice');
    expect(await delivered.promise).toBe(`${APP}:alice:1`);
    await receiverClosed;
    expect(written).toBeLessThan(8 * 1024 * 1024);
    dispatcher.stop();
  });
});
