import { describe, expect, it } from 'vitest';
import { isSelfQuery, recordCall, refusal, type StatusCall } from '../../src/actors/callPolicy.js';
import { initialContext } from '../../src/actors/machine.js';
import type { PresenceContext } from '../../src/actors/types.js';
import { ErrorCode, PresenceError } from '../../src/errors.js';
import { policy } from '../support/appPolicy.js';

const T = 1_700_000_000_000;

const ctx = (extra: Partial<PresenceContext> = {}): PresenceContext => ({
  ...initialContext({ sdkAppID: 1400000001, userID: 'alice' }),
  ...extra,
});

const full = (call: 'getUserStatus' | 'subscribeUserStatus' | 'unsubscribeUserStatus', at = T) =>
  ctx({ rateWindows: { [call]: Array.from({ length: 20 }, () => at) } });

const q = (...userIDs: string[]): StatusCall => ({ call: 'getUserStatus', userIDs });
const s = (...userIDs: string[]): StatusCall => ({ call: 'subscribeUserStatus', userIDs });
const u = (...userIDs: string[]): StatusCall => ({ call: 'unsubscribeUserStatus', userIDs });
const many = (n: number) => Array.from({ length: n }, (_, i) => `u${i}`);

describe('callPolicy - isSelfQuery()', () => {
  it('callPolicy - getUserStatus of only oneself is a self query', () => {
    expect(isSelfQuery(ctx(), q('alice'))).toBe(true);
    expect(isSelfQuery(ctx(), q('alice', 'alice'))).toBe(true);
  });

  it('callPolicy - getUserStatus that names anyone else is not a self query', () => {
    expect(isSelfQuery(ctx(), q('alice', 'bob'))).toBe(false);
    expect(isSelfQuery(ctx(), q('bob'))).toBe(false);
  });

  it('callPolicy - an empty getUserStatus is not a self query', () => {
    expect(isSelfQuery(ctx(), q())).toBe(false);
  });

  it('callPolicy - subscribe and unsubscribe are never self queries', () => {
    expect(isSelfQuery(ctx(), s('alice'))).toBe(false);
    expect(isSelfQuery(ctx(), u('alice'))).toBe(false);
  });
});

describe('callPolicy - refusal()', () => {
  it('callPolicy - an allowed call is not refused', () => {
    expect(refusal(ctx(), q('bob'), policy(), T)).toBeUndefined();
    expect(refusal(ctx(), s('bob'), policy(), T)).toBeUndefined();
    expect(refusal(ctx(), u('bob'), policy(), T)).toBeUndefined();
  });

  it('callPolicy - a self query is never refused, whatever the edition, switch and window', () => {
    const p = policy({ edition: 'basic', userStatusEnabled: false });
    expect(refusal(full('getUserStatus'), q('alice'), p, T)).toBeUndefined();
  });

  it('callPolicy - basic edition refuses every status call with 7013', () => {
    const p = policy({ edition: 'basic' });
    for (const call of [q('bob'), s('bob'), u('bob'), u()]) {
      expect(refusal(ctx(), call, p, T)?.code).toBe(ErrorCode.EDITION_NOT_SUPPORTED);
    }
  });

  it('callPolicy - the switch off refuses every status call with 72001', () => {
    const p = policy({ userStatusEnabled: false });
    for (const call of [q('bob'), s('bob'), u('bob'), u()]) {
      expect(refusal(ctx(), call, p, T)?.code).toBe(ErrorCode.USER_STATUS_DISABLED);
    }
  });

  it('callPolicy - edition is checked before the switch', () => {
    expect(refusal(ctx(), q('bob'), policy({ edition: 'basic', userStatusEnabled: false }), T)?.code).toBe(
      ErrorCode.EDITION_NOT_SUPPORTED,
    );
  });

  it('callPolicy - gating is checked before parameters', () => {
    expect(refusal(ctx(), s('alice'), policy({ edition: 'basic' }), T)?.code).toBe(ErrorCode.EDITION_NOT_SUPPORTED);
    expect(refusal(ctx(), s('alice'), policy({ userStatusEnabled: false }), T)?.code).toBe(ErrorCode.USER_STATUS_DISABLED);
  });

  it('callPolicy - getUserStatus takes at most maxQueryUsers ids (6017 beyond)', () => {
    expect(refusal(ctx(), q(...many(500)), policy(), T)).toBeUndefined();
    expect(refusal(ctx(), q(...many(501)), policy(), T)?.code).toBe(ErrorCode.INVALID_PARAMETERS);
  });

  it('callPolicy - getUserStatus of no ids is 6017', () => {
    expect(refusal(ctx(), q(), policy(), T)?.code).toBe(ErrorCode.INVALID_PARAMETERS);
  });

  it('callPolicy - subscribeUserStatus takes at most maxSubscribePerCall ids (6017 beyond)', () => {
    expect(refusal(ctx(), s(...many(100)), policy(), T)).toBeUndefined();
    expect(refusal(ctx(), s(...many(101)), policy(), T)?.code).toBe(ErrorCode.INVALID_PARAMETERS);
  });

  it('callPolicy - subscribeUserStatus to oneself is 6017', () => {
    expect(refusal(ctx(), s('bob', 'alice'), policy(), T)?.code).toBe(ErrorCode.INVALID_PARAMETERS);
  });

  it('callPolicy - subscribeUserStatus of no ids is 6017', () => {
    expect(refusal(ctx(), s(), policy(), T)?.code).toBe(ErrorCode.INVALID_PARAMETERS);
  });

  it('callPolicy - unsubscribeUserStatus of no ids is allowed (clears all)', () => {
    expect(refusal(ctx(), u(), policy(), T)).toBeUndefined();
  });

  it('callPolicy - unsubscribeUserStatus takes at most maxSubscribePerCall ids (6017 beyond)', () => {
    expect(refusal(ctx(), u(...many(100)), policy(), T)).toBeUndefined();
    expect(refusal(ctx(), u(...many(101)), policy(), T)?.code).toBe(ErrorCode.INVALID_PARAMETERS);
  });

  it('callPolicy - the per-call limits follow the policy', () => {
    const p = policy({}, { maxQueryUsers: 2, maxSubscribePerCall: 1 });
    expect(refusal(ctx(), q('a', 'b', 'c'), p, T)?.code).toBe(ErrorCode.INVALID_PARAMETERS);
    expect(refusal(ctx(), s('a', 'b'), p, T)?.code).toBe(ErrorCode.INVALID_PARAMETERS);
    expect(refusal(ctx(), u('a', 'b'), p, T)?.code).toBe(ErrorCode.INVALID_PARAMETERS);
  });

  it('callPolicy - a full window refuses with 7008 and retryAfterMs', () => {
    const r = refusal(full('getUserStatus', T), q('bob'), policy(), T + 1_500);
    expect(r).toMatchObject({ code: ErrorCode.RATE_LIMITED, retryAfterMs: 3_500 });
    expect(r?.desc).toMatch(/20/);
  });

  it('callPolicy - parameters are checked before the rate window', () => {
    expect(refusal(full('subscribeUserStatus'), s('alice'), policy(), T)?.code).toBe(ErrorCode.INVALID_PARAMETERS);
  });

  it('callPolicy - a full window of one call kind does not refuse another', () => {
    const c = full('getUserStatus');
    expect(refusal(c, q('bob'), policy(), T)?.code).toBe(ErrorCode.RATE_LIMITED);
    expect(refusal(c, s('bob'), policy(), T)).toBeUndefined();
    expect(refusal(c, u('bob'), policy(), T)).toBeUndefined();
  });

  it('callPolicy - refusal does not record the call', () => {
    const c = ctx();
    refusal(c, q('bob'), policy(), T);
    expect(c.rateWindows).toEqual({});
  });

  it('callPolicy - non-rate refusals carry no retryAfterMs', () => {
    const r = refusal(ctx(), q('bob'), policy({ edition: 'basic' }), T);
    expect(r && 'retryAfterMs' in r).toBe(false);
  });
});

describe('callPolicy - recordCall()', () => {
  it('callPolicy - recordCall appends now to the window of that call kind only', () => {
    const windows = recordCall({ getUserStatus: [T - 1] }, 'subscribeUserStatus', T, policy());
    expect(windows).toEqual({ getUserStatus: [T - 1], subscribeUserStatus: [T] });
  });

  it('callPolicy - recordCall drops entries that left the window', () => {
    const windows = recordCall({ getUserStatus: [T - 10_000, T - 1] }, 'getUserStatus', T, policy());
    expect(windows.getUserStatus).toEqual([T - 1, T]);
  });

  it('callPolicy - recordCall does not mutate the windows it is given', () => {
    const before = { getUserStatus: [T - 1] };
    recordCall(before, 'getUserStatus', T, policy());
    expect(before).toEqual({ getUserStatus: [T - 1] });
  });
});

describe('errors - PresenceError', () => {
  it('errors - codes are the SPEC values', () => {
    expect(ErrorCode).toMatchObject({
      REQUEST_TIMEOUT: 6012,
      NOT_LOGGED_IN: 6014,
      INVALID_PARAMETERS: 6017,
      KICKED_BY_SAME_DEVICE: 6208,
      RATE_LIMITED: 7008,
      EDITION_NOT_SUPPORTED: 7013,
      USER_STATUS_DISABLED: 72001,
      USERSIG_REVOKED: 70052,
      INTERNAL_ERROR: 70500,
    });
  });

  it('errors - toJSON carries retryAfterMs only when set', () => {
    expect(new PresenceError(7008, 'slow down', 1200).toJSON()).toEqual({ code: 7008, desc: 'slow down', retryAfterMs: 1200 });
    expect(new PresenceError(6017, 'bad').toJSON()).toEqual({ code: 6017, desc: 'bad' });
  });
});
