import { afterEach, describe, expect, it, vi } from 'vitest';
import { UserStatusType, type UserStatus } from '../../src/actors/types.js';
import { createLogger } from '../../src/log.js';
import { WebhookDispatcher, type PendingWebhook } from '../../src/webhooks/dispatcher.js';
import { OUTBOX_CAP, appendToOutbox, retryDelayMs } from '../../src/webhooks/outbox.js';
import { SIGNATURE_HEADER, signWebhook, verifyWebhook } from '../../src/webhooks/signature.js';
import { callbackUrlFor, stateChangeEvent, type WebhookEvent } from '../../src/webhooks/stateChange.js';

const APP = 1400000001;
const status = (statusType: number, version: number, customStatus = ''): UserStatus => ({ userID: 'alice', statusType: statusType as UserStatus['statusType'], customStatus, version, lastSeenAt: 0 });
const log = createLogger({ level: 'silent' });

describe('webhooks - State.StateChange bodies', () => {
  it('webhooks - a login, a custom status, a drop and a logout map to Tencent actions and reasons', () => {
    const unlogined = status(UserStatusType.UNLOGINED, 0);
    const online = status(UserStatusType.ONLINE, 1);
    const busy = status(UserStatusType.ONLINE, 2, 'in a call');
    const offline = status(UserStatusType.OFFLINE, 3);
    const out = status(UserStatusType.UNLOGINED, 4);
    const info = (before: UserStatus, after: UserStatus) => stateChangeEvent(APP, before, after, [], 1000)!.body.Info;
    expect(info(unlogined, online)).toEqual({ Action: 'Login', To_Account: 'alice', Reason: 'Register' });
    expect(info(online, busy)).toEqual({ Action: 'Login', To_Account: 'alice', Reason: 'CustomStatus' });
    expect(info(busy, offline)).toEqual({ Action: 'Disconnect', To_Account: 'alice', Reason: 'LinkClose' });
    expect(info(offline, out)).toEqual({ Action: 'Logout', To_Account: 'alice', Reason: 'Unregister' });
  });

  it('webhooks - the body carries the command, time, custom status, version and an id stable per version', () => {
    const event = stateChangeEvent(APP, status(UserStatusType.ONLINE, 1), status(UserStatusType.ONLINE, 2, 'music'), ['android'], 1234)!;
    expect(event.id).toBe(`${APP}:alice:2`);
    expect(event.body).toEqual({
      CallbackCommand: 'State.StateChange',
      EventTime: 1234,
      Info: { Action: 'Login', To_Account: 'alice', Reason: 'CustomStatus' },
      CustomStatus: 'music',
      KickedDevice: [{ Platform: 'Android' }],
      Version: 2,
      EventId: `${APP}:alice:2`,
    });
  });

  it('webhooks - no event when the version did not change', () => {
    expect(stateChangeEvent(APP, status(UserStatusType.ONLINE, 2), status(UserStatusType.ONLINE, 2), [], 0)).toBeUndefined();
  });

  it("webhooks - the callback URL gets Tencent's query, keeping the app's own parameters and replacing ours", () => {
    expect(callbackUrlFor('https://app.example/im/callback', APP)).toBe(
      `https://app.example/im/callback?SdkAppid=${APP}&CallbackCommand=State.StateChange&contenttype=json`,
    );
    expect(callbackUrlFor('http://10.0.0.5:8080/cb?token=abc&SdkAppid=1#frag', APP)).toBe(
      `http://10.0.0.5:8080/cb?token=abc&SdkAppid=${APP}&CallbackCommand=State.StateChange&contenttype=json#frag`,
    );
  });
});

describe('webhooks - signature', () => {
  it('webhooks - a signed body verifies with the secret, and not with another secret or another body', () => {
    const header = signWebhook('s3cret-key-0123456789', '{"a":1}', 1700000000000);
    expect(header).toMatch(/^t=1700000000000,v1=[0-9a-f]{64}$/);
    expect(verifyWebhook('s3cret-key-0123456789', '{"a":1}', header)).toBe(true);
    expect(verifyWebhook('another-key-0123456789', '{"a":1}', header)).toBe(false);
    expect(verifyWebhook('s3cret-key-0123456789', '{"a":2}', header)).toBe(false);
    expect(verifyWebhook('s3cret-key-0123456789', '{"a":1}', header.replace('t=17', 't=18'))).toBe(false);
    expect(verifyWebhook('s3cret-key-0123456789', '{"a":1}', 'garbage')).toBe(false);
  });
});

describe('webhooks - outbox', () => {
  const event = (n: number): WebhookEvent => stateChangeEvent(APP, status(1, n - 1), status(1, n, `s${n}`), [], n)!;

  it('webhooks - the outbox keeps order and gives up the oldest beyond its cap, saying how many', () => {
    let outbox: WebhookEvent[] = [];
    for (let n = 1; n <= 3; n++) outbox = appendToOutbox(outbox, event(n), 2).outbox;
    expect(outbox.map((e) => e.body.Version)).toEqual([2, 3]);
    expect(appendToOutbox(outbox, event(4), 2).overflow).toBe(1);
    expect(appendToOutbox([], event(1)).overflow).toBe(0);
    expect(OUTBOX_CAP).toBeGreaterThanOrEqual(100);
  });

  it('webhooks - retries back off from about 1 s, doubling, to at most 5 minutes', () => {
    expect(retryDelayMs(1, () => 0.5)).toBe(1_000);
    expect(retryDelayMs(2, () => 0.5)).toBe(2_000);
    expect(retryDelayMs(4, () => 0.5)).toBe(8_000);
    expect(retryDelayMs(40, () => 0.5)).toBe(300_000);
    expect(retryDelayMs(1, () => 0)).toBe(800);
    expect(retryDelayMs(1, () => 1)).toBe(1_200);
  });
});

describe('webhooks - dispatcher', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** An outbox per user, as the shard host keeps them, and a receiver answering `statusFor`. */
  function setup(statusFor: (body: string, attempt: number) => number) {
    const outboxes = new Map<string, WebhookEvent[]>();
    const posts: Array<{ body: Record<string, any>; headers: Record<string, string> }> = [];
    let attempt = 0;
    const dispatcher = new WebhookDispatcher({
      next: (key): PendingWebhook | undefined => {
        const event = outboxes.get(key)?.[0];
        return event && { event, url: 'http://receiver.test/hook', secretKey: 'secret-key-0123456789' };
      },
      delivered: async (key, id) => {
        const outbox = outboxes.get(key)!;
        if (outbox[0]?.id === id) outbox.shift();
      },
      log,
      post: async (_url, body, headers) => {
        posts.push({ body: JSON.parse(body), headers });
        return statusFor(body, attempt++);
      },
    });
    const add = (key: string, user: string, versions: number[]) =>
      outboxes.set(key, versions.map((v) => ({ ...stateChangeEvent(APP, { ...status(1, v - 1), userID: user }, { ...status(1, v, `v${v}`), userID: user }, [], v)! })));
    return { dispatcher, outboxes, posts, add };
  }

  it('webhooks - sends a user outbox oldest first, signed, with the idempotency key, and empties it', async () => {
    const { dispatcher, outboxes, posts, add } = setup(() => 200);
    add('u1', 'alice', [1, 2, 3]);
    dispatcher.kick('u1');
    await vi.waitFor(() => expect(outboxes.get('u1')).toEqual([]));
    expect(posts.map((p) => p.body.Version)).toEqual([1, 2, 3]);
    const [first] = posts;
    expect(first!.headers['idempotency-key']).toBe(`${APP}:alice:1`);
    expect(verifyWebhook('secret-key-0123456789', JSON.stringify(first!.body), first!.headers[SIGNATURE_HEADER]!)).toBe(true);
  });

  it('webhooks - a failing event is retried after a backoff and nothing after it overtakes it', async () => {
    vi.useFakeTimers();
    const { dispatcher, outboxes, posts, add } = setup((_body, attempt) => (attempt < 2 ? 503 : 204));
    add('u1', 'alice', [1, 2]);
    dispatcher.kick('u1');
    await vi.advanceTimersByTimeAsync(0);
    expect(posts.map((p) => p.body.Version)).toEqual([1]);
    expect(dispatcher.stateOf('u1')).toMatchObject({ failures: 1, lastError: 'HTTP 503' });
    dispatcher.kick('u1'); // a new change while waiting does not jump the queue or the backoff
    await vi.advanceTimersByTimeAsync(0);
    expect(posts).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_200);
    expect(posts.map((p) => p.body.Version)).toEqual([1, 1]);
    await vi.advanceTimersByTimeAsync(2_400);
    await vi.waitFor(() => expect(outboxes.get('u1')).toEqual([]));
    expect(posts.map((p) => p.body.Version)).toEqual([1, 1, 1, 2]);
    expect(dispatcher.stateOf('u1')).toBeUndefined();
  });

  it('webhooks - a failing user does not hold up another user', async () => {
    const { dispatcher, outboxes, posts, add } = setup((body) => (JSON.parse(body).Info.To_Account === 'bob' ? 500 : 200));
    add('u1', 'bob', [1]);
    add('u2', 'carol', [1, 2]);
    dispatcher.kick('u1');
    dispatcher.kick('u2');
    await vi.waitFor(() => expect(outboxes.get('u2')).toEqual([]));
    expect(outboxes.get('u1')).toHaveLength(1);
    expect(dispatcher.failingUsers).toBe(1);
    expect(posts.filter((p) => p.body.Info.To_Account === 'carol').map((p) => p.body.Version)).toEqual([1, 2]);
    dispatcher.stop();
  });
});
