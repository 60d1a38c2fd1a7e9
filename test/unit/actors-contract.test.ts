import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import {
  UserActor,
  UserStatusType,
  type PresenceEvent,
  type Transition,
  type UserStatus,
} from '../../src/actors/index.js';
import { ErrorCode, PresenceError } from '../../src/errors.js';
import { listArg, validateCustomStatus, validateUserIDList } from '../../src/gateway/validate.js';
import { policy } from '../support/appPolicy.js';

const T0 = 1_700_000_000_000;
const APP = 1400000001;


let nextRequest = 0;
const rid = (): string => `r${++nextRequest}`;

/** The code `run` throws with, or undefined when it returns. */
function thrownCode(run: () => unknown): number | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof PresenceError) return error.code;
    throw error;
  }
  return undefined;
}

/** Args of the wrong type, as a device could send them on the wire (docs/protocol.md: 6017). */
const NOT_A_MAP: readonly unknown[] = ['listening to music', ['alice'], 42, true];

describe('contract - validation of call args at the edge', () => {
  it.each(NOT_A_MAP.map((args) => [JSON.stringify(args), args]))(
    'contract - setSelfStatus with args %s (not a map) is refused with 6017, not taken for a clearing',
    (_name, args) => {
      expect(thrownCode(() => validateCustomStatus(args))).toBe(ErrorCode.INVALID_PARAMETERS);
    },
  );

  it('contract - setSelfStatus without args, or with null args, still clears the custom status', () => {
    expect(validateCustomStatus(undefined)).toBe('');
    expect(validateCustomStatus(null)).toBe('');
    expect(validateCustomStatus({})).toBe('');
  });

  it.each(NOT_A_MAP.map((args) => [JSON.stringify(args), args]))(
    'contract - unsubscribeUserStatus with args %s (not a map) is refused with 6017, not taken for "clear every subscription"',
    (_name, args) => {
      expect(thrownCode(() => validateUserIDList(listArg(args), 100, { allowEmpty: true }))).toBe(ErrorCode.INVALID_PARAMETERS);
    },
  );

  it.each(NOT_A_MAP.map((args) => [JSON.stringify(args), args]))(
    'contract - getUserStatus and subscribeUserStatus with args %s (not a map) are refused with 6017',
    (_name, args) => {
      expect(thrownCode(() => validateUserIDList(listArg(args), 500))).toBe(ErrorCode.INVALID_PARAMETERS);
      expect(thrownCode(() => validateUserIDList(listArg(args), 100))).toBe(ErrorCode.INVALID_PARAMETERS);
    },
  );

  it('contract - unsubscribeUserStatus without args, with null args, or without a list still clears every subscription', () => {
    for (const args of [undefined, null, {}, { userIDList: [] }]) {
      expect(validateUserIDList(listArg(args), 100, { allowEmpty: true })).toEqual([]);
    }
  });

  it('contract - a list in a map is read as before', () => {
    expect(validateUserIDList(listArg({ userIDList: ['bob', 'carol', 'bob'] }), 100)).toEqual(['bob', 'carol']);
  });
});

describe('contract - the user actor', () => {
  it('contract - a second device on the same platform with another deviceId kicks nobody', () => {
    const clock = new SimulatedClock();
    clock.set(T0);
    const actor = new UserActor({ sdkAppID: APP, userID: 'alice', clock });
    const login = (deviceId: string, connId: string) =>
      actor.step({ type: 'LOGIN', requestId: rid(), policy: policy(), deviceId, connId, gatewayId: 'g1', platform: 'ios' });
    login('phone-1', 'c1');
    const second = login('phone-2', 'c2');
    expect(second.kicks).toEqual([]);
    expect(second.after).toEqual(second.before);
    expect(Object.keys(actor.context.devices).sort()).toEqual(['phone-1', 'phone-2']);
  });

  /**
   * Random sessions of three devices (logins, replacements, logouts, drops, heartbeats, custom
   * statuses, calls, admin kicks and heartbeat timeouts): after every step and every timer,
   * `version` moved by one exactly when `statusType` or `customStatus` changed, the state agrees
   * with the status, and the SPEC's invariants of an ONLINE and a not-ONLINE user hold.
   */
  it('contract - version grows by one on every public change and never otherwise, over random sessions', () => {
    const limits = { heartbeatTimeoutMs: 1_000, subscriptionRetentionMs: 3_000, subscriptionCap: 3, rateLimit: { count: 3, windowMs: 500 } };
    const p = policy({}, limits);
    const STATE_STATUS: Record<string, UserStatusType> = { online: UserStatusType.ONLINE, offline: UserStatusType.OFFLINE, unlogined: UserStatusType.UNLOGINED };
    for (let seed = 1; seed <= 100; seed++) {
      let s = seed;
      const random = (): number => ((s = (s * 1_103_515_245 + 12_345) & 0x7fffffff), s / 0x7fffffff);
      const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
      const trail: string[] = [];
      const check = (t: { before: UserStatus; after: UserStatus; state: unknown }): void => {
        const where = `seed ${seed}: ${trail.join(' ')}`;
        const changed = t.before.statusType !== t.after.statusType || t.before.customStatus !== t.after.customStatus;
        expect(t.after.version, where).toBe(t.before.version + (changed ? 1 : 0));
        const state = typeof t.state === 'string' ? t.state : Object.keys(t.state as object)[0]!;
        expect(t.after.statusType, where).toBe(STATE_STATUS[state]);
        if (t.after.statusType === UserStatusType.ONLINE) expect(t.after.lastSeenAt, where).toBe(0);
        else expect(t.after.customStatus, where).toBe('');
      };
      const clock = new SimulatedClock();
      clock.set(T0);
      const actor = new UserActor({
        sdkAppID: APP,
        userID: 'alice',
        clock,
        observer: { onTimerTransition: (_actor, t: Transition) => (trail.push('timer'), check(t)) },
      });
      const connection: Record<string, number> = { d1: 0, d2: 0, d3: 0 };
      for (let i = 0; i < 60; i++) {
        const deviceId = pick(['d1', 'd2', 'd3']);
        const r = random();
        if (r >= 0.83) {
          const ms = Math.floor(random() * 1_500);
          trail.push(`+${ms}`);
          clock.increment(ms);
          continue;
        }
        if (r < 0.2 && random() < 0.5) connection[deviceId]! += 1;
        const on = { requestId: rid(), policy: p, deviceId, connId: `${deviceId}-c${connection[deviceId]}` };
        const event: PresenceEvent =
          r < 0.2 ? { type: 'LOGIN', ...on, gatewayId: 'g1', platform: 'web' }
          : r < 0.3 ? { type: 'LOGOUT', ...on }
          : r < 0.4 ? { type: 'DISCONNECT', ...on }
          : r < 0.5 ? { type: 'HEARTBEAT', ...on }
          : r < 0.6 ? { type: 'SET_CUSTOM_STATUS', ...on, customStatus: pick(['', 'a', 'b']) }
          : r < 0.7 ? { type: 'SUBSCRIBE', ...on, userIDs: [pick(['u1', 'u2', 'u3', 'u4']), pick(['u1', 'u2', 'u3', 'u4'])] }
          : r < 0.75 ? { type: 'UNSUBSCRIBE', ...on, userIDs: random() < 0.3 ? [] : [pick(['u1', 'u2'])] }
          : r < 0.8 ? { type: 'QUERY', ...on, userIDs: ['u1'] }
          : { type: 'KICK', requestId: rid(), policy: p };
        trail.push(`${event.type}:${'connId' in event ? event.connId : ''}`);
        check(actor.step(event));
        expect(actor.context.subscriptions.userIDs.length).toBeLessThanOrEqual(limits.subscriptionCap);
      }
    }
  });
});
