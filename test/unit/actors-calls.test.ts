import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import {
  DEFAULT_LIMITS,
  UserActor,
  type ActorReply,
  type AppPolicy,
  type StepResult,
} from '../../src/actors/index.js';
import { ErrorCode } from '../../src/errors.js';
import { policy } from '../support/appPolicy.js';

const T0 = 1_700_000_000_000;
const APP = 1400000001;

const BASIC = policy({ edition: 'basic' });
const SWITCH_OFF = policy({ userStatusEnabled: false });

let nextRequest = 0;
const rid = (): string => `r${++nextRequest}`;

/** An actor for `alice` with device d1 logged in on connection c1 at T0. */
function loggedIn(p: AppPolicy = policy()) {
  const clock = new SimulatedClock();
  clock.set(T0);
  const actor = new UserActor({ sdkAppID: APP, userID: 'alice', clock });
  actor.step({ type: 'LOGIN', requestId: rid(), policy: p, deviceId: 'd1', connId: 'c1', gatewayId: 'g1', platform: 'web' });
  const q = (userIDs: string[], pol: AppPolicy = p): StepResult =>
    actor.step({ type: 'QUERY', requestId: rid(), policy: pol, deviceId: 'd1', connId: 'c1', userIDs });
  const sub = (userIDs: string[], pol: AppPolicy = p): StepResult =>
    actor.step({ type: 'SUBSCRIBE', requestId: rid(), policy: pol, deviceId: 'd1', connId: 'c1', userIDs });
  const unsub = (userIDs: string[], pol: AppPolicy = p): StepResult =>
    actor.step({ type: 'UNSUBSCRIBE', requestId: rid(), policy: pol, deviceId: 'd1', connId: 'c1', userIDs });
  const subscribed = () => [...actor.context.subscriptions.userIDs];
  return { clock, actor, q, sub, unsub, subscribed };
}

const ids = (prefix: string, n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `${prefix}${from + i}`);

function refused(reply: ActorReply | undefined): { code: number; retryAfterMs?: number } | undefined {
  return reply && !reply.ok ? { code: reply.code, ...(reply.retryAfterMs !== undefined ? { retryAfterMs: reply.retryAfterMs } : {}) } : undefined;
}
const codeOf = (res: StepResult): number | undefined => refused(res.reply)?.code;
const isOk = (res: StepResult): boolean => res.reply?.ok === true;

describe('subscriptions - through the actor', () => {
  it('subscriptions - subscribing records the users in the order given', () => {
    const { sub, subscribed } = loggedIn();
    const res = sub(['bob', 'carol']);
    expect(isOk(res)).toBe(true);
    expect(subscribed()).toEqual(['bob', 'carol']);
  });

  it('subscriptions - the subscribe reply lists no evictions below the cap', () => {
    const { sub } = loggedIn();
    const res = sub(['bob']);
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.reply && res.reply.ok ? (res.reply.evicted ?? []) : null).toEqual([]);
  });

  it('subscriptions - subscribing does not change the public status', () => {
    const { sub } = loggedIn();
    const res = sub(['bob']);
    expect(res.after).toEqual(res.before);
  });

  it('subscriptions - subscribing records the time of the subscription', () => {
    const { sub, clock, actor } = loggedIn();
    clock.increment(1234);
    sub(['bob']);
    expect(actor.context.subscriptions).toEqual({ userIDs: ['bob'], subscribedAt: [T0 + 1234] });
  });

  it('subscriptions - the default cap is 200; the 201st evicts the oldest', () => {
    const { sub, clock, subscribed } = loggedIn();
    sub(ids('u', 100, 0));
    clock.increment(1);
    sub(ids('u', 100, 100));
    expect(subscribed()).toHaveLength(200);
    clock.increment(1);
    const res = sub(['newcomer']);
    expect(res.reply).toMatchObject({ ok: true, evicted: ['u0'] });
    expect(subscribed()).toHaveLength(200);
    expect(subscribed()).not.toContain('u0');
    expect(subscribed().at(-1)).toBe('newcomer');
  });

  it('subscriptions - beyond the cap the ones subscribed longest ago are evicted, oldest first', () => {
    const p = policy({}, { subscriptionCap: 3 });
    const { sub, clock, subscribed } = loggedIn(p);
    sub(['a']);
    clock.increment(1);
    sub(['b']);
    clock.increment(1);
    sub(['c']);
    clock.increment(1);
    const res = sub(['d', 'e']);
    expect(res.reply).toMatchObject({ ok: true, evicted: ['a', 'b'] });
    expect(subscribed()).toEqual(['c', 'd', 'e']);
  });

  it('subscriptions - subscribing again refreshes the age so a different one is evicted', () => {
    const p = policy({}, { subscriptionCap: 3 });
    const { sub, clock, subscribed } = loggedIn(p);
    sub(['a']);
    clock.increment(1);
    sub(['b']);
    clock.increment(1);
    sub(['c']);
    clock.increment(1);
    expect(isOk(sub(['a']))).toBe(true); // a is now the newest
    clock.increment(1);
    const res = sub(['d']);
    expect(res.reply).toMatchObject({ ok: true, evicted: ['b'] });
    expect(subscribed()).toEqual(['c', 'a', 'd']);
  });

  it('subscriptions - subscribing again to one already held does not duplicate it', () => {
    const { sub, subscribed } = loggedIn();
    sub(['bob', 'carol']);
    sub(['bob']);
    expect(subscribed()).toEqual(['carol', 'bob']);
  });

  it('subscriptions - subscribing again to one already held does not count against the cap', () => {
    const p = policy({}, { subscriptionCap: 2 });
    const { sub, subscribed } = loggedIn(p);
    sub(['a', 'b']);
    const res = sub(['b']);
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.reply && res.reply.ok ? (res.reply.evicted ?? []) : null).toEqual([]);
    expect(subscribed()).toEqual(['a', 'b']);
  });

  it('subscriptions - subscribing to oneself is refused with 6017', () => {
    const { sub, subscribed } = loggedIn();
    const res = sub(['alice']);
    expect(codeOf(res)).toBe(ErrorCode.INVALID_PARAMETERS);
    expect(subscribed()).toEqual([]);
  });

  it('subscriptions - a list that includes oneself is refused whole with 6017', () => {
    const { sub, subscribed } = loggedIn();
    const res = sub(['bob', 'alice']);
    expect(codeOf(res)).toBe(ErrorCode.INVALID_PARAMETERS);
    expect(subscribed()).toEqual([]);
  });

  it('subscriptions - more than maxSubscribePerCall ids is refused with 6017', () => {
    const { sub, subscribed } = loggedIn();
    const res = sub(ids('u', DEFAULT_LIMITS.maxSubscribePerCall + 1));
    expect(codeOf(res)).toBe(ErrorCode.INVALID_PARAMETERS);
    expect(subscribed()).toEqual([]);
  });

  it('subscriptions - exactly maxSubscribePerCall ids is accepted', () => {
    const { sub, subscribed } = loggedIn();
    expect(isOk(sub(ids('u', DEFAULT_LIMITS.maxSubscribePerCall)))).toBe(true);
    expect(subscribed()).toHaveLength(100);
  });

  it('subscriptions - maxSubscribePerCall follows the app policy', () => {
    const p = policy({}, { maxSubscribePerCall: 2 });
    const { sub } = loggedIn(p);
    expect(codeOf(sub(['a', 'b', 'c']))).toBe(ErrorCode.INVALID_PARAMETERS);
    expect(isOk(sub(['a', 'b']))).toBe(true);
  });

  it('subscriptions - an empty subscribe list is refused with 6017', () => {
    const { sub } = loggedIn();
    expect(codeOf(sub([]))).toBe(ErrorCode.INVALID_PARAMETERS);
  });

  it('subscriptions - unsubscribing removes only the users named', () => {
    const { sub, unsub, subscribed } = loggedIn();
    sub(['bob', 'carol', 'dave']);
    const res = unsub(['carol', 'nobody']);
    expect(isOk(res)).toBe(true);
    expect(subscribed()).toEqual(['bob', 'dave']);
  });

  it('subscriptions - an empty unsubscribe clears every subscription', () => {
    const { sub, unsub, subscribed } = loggedIn();
    sub(['bob', 'carol', 'dave']);
    const res = unsub([]);
    expect(isOk(res)).toBe(true);
    expect(subscribed()).toEqual([]);
  });

  it('subscriptions - unsubscribing more than maxSubscribePerCall ids is refused with 6017 and removes nothing', () => {
    const { sub, unsub, subscribed } = loggedIn();
    sub(['u0', 'u1']);
    const res = unsub(ids('u', DEFAULT_LIMITS.maxSubscribePerCall + 1));
    expect(codeOf(res)).toBe(ErrorCode.INVALID_PARAMETERS);
    expect(subscribed()).toEqual(['u0', 'u1']);
  });

  it('subscriptions - subscriptions are shared by all devices of the user', () => {
    const { actor, sub } = loggedIn();
    actor.step({ type: 'LOGIN', requestId: rid(), policy: policy(), deviceId: 'd2', connId: 'c2', gatewayId: 'g2', platform: 'ios' });
    sub(['bob']);
    actor.step({ type: 'UNSUBSCRIBE', requestId: rid(), policy: policy(), deviceId: 'd2', connId: 'c2', userIDs: ['bob'] });
    expect(actor.context.subscriptions.userIDs).toEqual([]);
  });
});

describe('gating - edition and switch', () => {
  it('gating - getUserStatus of others on a basic edition app is refused with 7013', () => {
    const { q } = loggedIn(BASIC);
    expect(codeOf(q(['bob']))).toBe(ErrorCode.EDITION_NOT_SUPPORTED);
  });

  it('gating - subscribeUserStatus on a basic edition app is refused with 7013', () => {
    const { sub, subscribed } = loggedIn(BASIC);
    expect(codeOf(sub(['bob']))).toBe(ErrorCode.EDITION_NOT_SUPPORTED);
    expect(subscribed()).toEqual([]);
  });

  it('gating - unsubscribeUserStatus on a basic edition app is refused with 7013', () => {
    const { sub, unsub, subscribed } = loggedIn();
    sub(['bob']);
    expect(codeOf(unsub([], BASIC))).toBe(ErrorCode.EDITION_NOT_SUPPORTED);
    expect(subscribed()).toEqual(['bob']);
  });

  it('gating - getUserStatus of others with the switch off is refused with 72001', () => {
    const { q } = loggedIn(SWITCH_OFF);
    expect(codeOf(q(['bob']))).toBe(ErrorCode.USER_STATUS_DISABLED);
  });

  it('gating - subscribeUserStatus with the switch off is refused with 72001', () => {
    const { sub, subscribed } = loggedIn(SWITCH_OFF);
    expect(codeOf(sub(['bob']))).toBe(ErrorCode.USER_STATUS_DISABLED);
    expect(subscribed()).toEqual([]);
  });

  it('gating - unsubscribeUserStatus with the switch off is refused with 72001', () => {
    const { sub, unsub, subscribed } = loggedIn();
    sub(['bob']);
    expect(codeOf(unsub(['bob'], SWITCH_OFF))).toBe(ErrorCode.USER_STATUS_DISABLED);
    expect(subscribed()).toEqual(['bob']);
  });

  it('gating - the edition is checked before the switch', () => {
    const { q } = loggedIn(policy({ edition: 'basic', userStatusEnabled: false }));
    expect(codeOf(q(['bob']))).toBe(ErrorCode.EDITION_NOT_SUPPORTED);
  });

  it('gating - the policy carried by each event applies at once', () => {
    const { sub } = loggedIn();
    expect(codeOf(sub(['bob'], BASIC))).toBe(ErrorCode.EDITION_NOT_SUPPORTED);
    expect(isOk(sub(['bob'], policy()))).toBe(true);
  });

  it('gating - getUserStatus of only oneself is allowed on a basic edition app with the switch off', () => {
    const { q } = loggedIn(policy({ edition: 'basic', userStatusEnabled: false }));
    expect(q(['alice']).reply).toMatchObject({ ok: true });
  });

  it('gating - getUserStatus of oneself together with another user is gated', () => {
    const { q } = loggedIn(BASIC);
    expect(codeOf(q(['alice', 'bob']))).toBe(ErrorCode.EDITION_NOT_SUPPORTED);
  });

  it('gating - getUserStatus of more than maxQueryUsers ids is refused with 6017', () => {
    const { q } = loggedIn();
    expect(codeOf(q(ids('u', DEFAULT_LIMITS.maxQueryUsers + 1)))).toBe(ErrorCode.INVALID_PARAMETERS);
    expect(isOk(q(ids('u', DEFAULT_LIMITS.maxQueryUsers)))).toBe(true);
  });

  it('gating - getUserStatus of an empty list is refused with 6017', () => {
    const { q } = loggedIn();
    expect(codeOf(q([]))).toBe(ErrorCode.INVALID_PARAMETERS);
  });

  it('gating - refusals carry a description', () => {
    const { q } = loggedIn(BASIC);
    const reply = q(['bob']).reply;
    expect(reply && !reply.ok ? reply.desc : '').not.toBe('');
  });
});

describe('rate - per-call windows through the actor', () => {
  const LIMIT = DEFAULT_LIMITS.rateLimit.count; // 20
  const WINDOW = DEFAULT_LIMITS.rateLimit.windowMs; // 5 000

  it('rate - 20 getUserStatus calls in a window are admitted', () => {
    const { q } = loggedIn();
    for (let i = 0; i < LIMIT; i++) expect(isOk(q(['bob']))).toBe(true);
  });

  it('rate - the 21st call in a window is refused with 7008', () => {
    const { q } = loggedIn();
    for (let i = 0; i < LIMIT; i++) q(['bob']);
    const res = q(['bob']);
    expect(codeOf(res)).toBe(ErrorCode.RATE_LIMITED);
  });

  it('rate - retryAfterMs is the time left until the oldest call leaves the window', () => {
    const { q, clock } = loggedIn();
    q(['bob']); // at T0
    clock.increment(1_000);
    for (let i = 1; i < LIMIT; i++) q(['bob']); // at T0 + 1 000
    clock.increment(250);
    const res = q(['bob']); // at T0 + 1 250
    expect(refused(res.reply)).toEqual({ code: ErrorCode.RATE_LIMITED, retryAfterMs: WINDOW - 1_250 });
  });

  it('rate - a call is admitted again exactly when retryAfterMs has passed', () => {
    const { q, clock } = loggedIn();
    q(['bob']);
    clock.increment(1_000);
    for (let i = 1; i < LIMIT; i++) q(['bob']);
    const res = q(['bob']);
    const retry = refused(res.reply)?.retryAfterMs ?? 0;
    expect(retry).toBe(4_000);
    clock.increment(retry - 1);
    expect(refused(q(['bob']).reply)).toEqual({ code: ErrorCode.RATE_LIMITED, retryAfterMs: 1 });
    clock.increment(1);
    expect(isOk(q(['bob']))).toBe(true);
    // Only one slot was freed.
    expect(codeOf(q(['bob']))).toBe(ErrorCode.RATE_LIMITED);
  });

  it('rate - the window slides: after windowMs every slot is free again', () => {
    const { q, clock } = loggedIn();
    for (let i = 0; i < LIMIT; i++) q(['bob']);
    clock.increment(WINDOW);
    for (let i = 0; i < LIMIT; i++) expect(isOk(q(['bob']))).toBe(true);
  });

  it('rate - refused 7008 calls count nothing', () => {
    const { q, clock } = loggedIn();
    for (let i = 0; i < LIMIT; i++) q(['bob']); // at T0
    clock.increment(4_000);
    for (let i = 0; i < 30; i++) expect(codeOf(q(['bob']))).toBe(ErrorCode.RATE_LIMITED); // at T0 + 4 000
    clock.increment(1_000); // T0 + 5 000: the T0 calls left; the refused ones must not be there
    for (let i = 0; i < LIMIT; i++) expect(isOk(q(['bob']))).toBe(true);
  });

  it('rate - refused 6017 calls count nothing', () => {
    const { sub } = loggedIn();
    for (let i = 0; i < 30; i++) expect(codeOf(sub(['alice']))).toBe(ErrorCode.INVALID_PARAMETERS);
    for (let i = 0; i < LIMIT; i++) expect(isOk(sub([`u${i}`]))).toBe(true);
  });

  it('rate - refused 7013 calls count nothing', () => {
    const { q } = loggedIn();
    for (let i = 0; i < 30; i++) expect(codeOf(q(['bob'], BASIC))).toBe(ErrorCode.EDITION_NOT_SUPPORTED);
    for (let i = 0; i < LIMIT; i++) expect(isOk(q(['bob']))).toBe(true);
  });

  it('rate - refused 72001 calls count nothing', () => {
    const { q } = loggedIn();
    for (let i = 0; i < 30; i++) expect(codeOf(q(['bob'], SWITCH_OFF))).toBe(ErrorCode.USER_STATUS_DISABLED);
    for (let i = 0; i < LIMIT; i++) expect(isOk(q(['bob']))).toBe(true);
  });

  it('rate - a rate-limited subscribe changes no subscription', () => {
    const { sub, subscribed } = loggedIn();
    for (let i = 0; i < LIMIT; i++) sub([`u${i}`]);
    expect(codeOf(sub(['late']))).toBe(ErrorCode.RATE_LIMITED);
    expect(subscribed()).not.toContain('late');
    expect(subscribed()).toHaveLength(LIMIT);
  });

  it('rate - a rate-limited unsubscribe removes nothing', () => {
    const { sub, unsub, subscribed } = loggedIn();
    sub(['bob']);
    for (let i = 0; i < LIMIT; i++) unsub(['nobody']);
    expect(codeOf(unsub([]))).toBe(ErrorCode.RATE_LIMITED);
    expect(subscribed()).toEqual(['bob']);
  });

  it('rate - windows are per call kind: a full getUserStatus window leaves subscribe and unsubscribe free', () => {
    const { q, sub, unsub } = loggedIn();
    for (let i = 0; i < LIMIT; i++) q(['bob']);
    expect(codeOf(q(['bob']))).toBe(ErrorCode.RATE_LIMITED);
    for (let i = 0; i < LIMIT; i++) expect(isOk(sub(['bob']))).toBe(true);
    for (let i = 0; i < LIMIT; i++) expect(isOk(unsub(['bob']))).toBe(true);
    expect(codeOf(sub(['bob']))).toBe(ErrorCode.RATE_LIMITED);
    expect(codeOf(unsub(['bob']))).toBe(ErrorCode.RATE_LIMITED);
  });

  it('rate - the window is per user, shared by all of its devices', () => {
    const { actor, q } = loggedIn();
    actor.step({ type: 'LOGIN', requestId: rid(), policy: policy(), deviceId: 'd2', connId: 'c2', gatewayId: 'g2', platform: 'ios' });
    for (let i = 0; i < LIMIT; i++) q(['bob']);
    const res = actor.step({ type: 'QUERY', requestId: rid(), policy: policy(), deviceId: 'd2', connId: 'c2', userIDs: ['bob'] });
    expect(codeOf(res)).toBe(ErrorCode.RATE_LIMITED);
  });

  it('rate - the limit follows rateLimit of the app policy', () => {
    const p = policy({}, { rateLimit: { count: 3, windowMs: 1_000 } });
    const { q, clock } = loggedIn(p);
    for (let i = 0; i < 3; i++) expect(isOk(q(['bob']))).toBe(true);
    clock.increment(400);
    expect(refused(q(['bob']).reply)).toEqual({ code: ErrorCode.RATE_LIMITED, retryAfterMs: 600 });
  });

  it('rate - getUserStatus of only oneself is not rate limited', () => {
    const { q } = loggedIn();
    for (let i = 0; i < 50; i++) expect(q(['alice']).reply).toMatchObject({ ok: true });
  });

  it('rate - getUserStatus of only oneself still works when the window is full', () => {
    const { q } = loggedIn();
    for (let i = 0; i < LIMIT; i++) q(['bob']);
    expect(q(['alice']).reply).toMatchObject({ ok: true });
  });

  it('rate - getUserStatus of only oneself does not consume the window', () => {
    const { q } = loggedIn();
    for (let i = 0; i < 50; i++) q(['alice']);
    for (let i = 0; i < LIMIT; i++) expect(isOk(q(['bob']))).toBe(true);
  });

  it('rate - the parameters are checked before the rate window', () => {
    const { sub } = loggedIn();
    for (let i = 0; i < LIMIT; i++) sub([`u${i}`]);
    expect(codeOf(sub(['alice']))).toBe(ErrorCode.INVALID_PARAMETERS);
  });

  it('rate - the actor keeps only calls inside the window', () => {
    const { q, clock, actor } = loggedIn();
    for (let i = 0; i < 5; i++) q(['bob']);
    clock.increment(WINDOW);
    q(['bob']);
    expect(actor.context.rateWindows.getUserStatus).toEqual([T0 + WINDOW]);
  });
});
