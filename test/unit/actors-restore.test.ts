import { pack, unpack } from 'msgpackr';
import { describe, expect, it, vi } from 'vitest';
import { SimulatedClock, StateMachine, createActor } from 'xstate';
import {
  DEFAULT_LIMITS,
  UserActor,
  UserStatusType,
  createPresenceMachine,
  type AppPolicy,
  type StoredSnapshot,
  type Transition,
} from '../../src/actors/index.js';
import { ErrorCode } from '../../src/errors.js';

const T0 = 1_700_000_000_000;
const APP = 1400000001;
const HB = DEFAULT_LIMITS.heartbeatTimeoutMs; // 400 000
const RETAIN = DEFAULT_LIMITS.subscriptionRetentionMs; // 600 000

const policy = (): AppPolicy => ({
  edition: 'premium',
  userStatusEnabled: true,
  friendStatusAutoNotify: false,
  limits: { ...DEFAULT_LIMITS, rateLimit: { ...DEFAULT_LIMITS.rateLimit } },
});

let nextRequest = 0;
const rid = (): string => `r${++nextRequest}`;

function clockAt(ms: number): SimulatedClock {
  const clock = new SimulatedClock();
  clock.set(ms);
  return clock;
}

function original() {
  const clock = clockAt(T0);
  const actor = new UserActor({ sdkAppID: APP, userID: 'alice', clock });
  return { clock, actor };
}

function restored(snapshot: StoredSnapshot, now: number) {
  const clock = clockAt(now);
  const timers: Transition[] = [];
  const actor = new UserActor({ sdkAppID: APP, userID: 'alice', clock, snapshot, observer: { onTimerTransition: (_actor, t) => void timers.push(t) } });
  const changes = () => timers.filter((t) => t.before.version !== t.after.version);
  return { clock, actor, timers, changes };
}

const viaJson = (s: StoredSnapshot): StoredSnapshot => JSON.parse(JSON.stringify(s)) as StoredSnapshot;
const viaMsgpack = (s: StoredSnapshot): StoredSnapshot => unpack(pack(s)) as StoredSnapshot;

const login = (actor: UserActor, deviceId: string, connId: string) =>
  actor.step({ type: 'LOGIN', requestId: rid(), policy: policy(), deviceId, connId, gatewayId: `gw-${connId}`, platform: 'web' });

for (const [name, roundTrip] of [
  ['JSON', viaJson],
  ['msgpackr', viaMsgpack],
] as const) {
  describe(`restore - through ${name}`, () => {
    it(`restore - a ${name} round-tripped snapshot brings back the status, devices and subscriptions`, () => {
      const { actor, clock } = original();
      login(actor, 'd1', 'c1');
      actor.step({ type: 'SET_CUSTOM_STATUS', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'c1', customStatus: 'busy' });
      actor.step({ type: 'SUBSCRIBE', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'c1', userIDs: ['bob'] });
      clock.increment(1_000);
      const snap = roundTrip(actor.persistedSnapshot());
      const { actor: copy } = restored(snap, T0 + 1_000);
      expect(copy.status).toEqual(actor.status);
      expect(copy.status).toMatchObject({ statusType: UserStatusType.ONLINE, customStatus: 'busy', version: 2 });
      expect(copy.context.devices).toEqual(actor.context.devices);
      expect(copy.context.subscriptions).toEqual(actor.context.subscriptions);
      expect(copy.state).toBe('online');
    });

    it(`restore - after a ${name} restore the heartbeat timer fires with the time left, not before`, () => {
      const { actor, clock } = original();
      login(actor, 'd1', 'c1');
      clock.increment(100_000);
      const snap = roundTrip(actor.persistedSnapshot());
      actor.stop();
      const { actor: copy, clock: clock2, changes } = restored(snap, T0 + 100_000);
      clock2.increment(HB - 100_000 - 1); // 299 999 ms more
      expect(copy.status.statusType).toBe(UserStatusType.ONLINE);
      expect(changes()).toEqual([]);
      clock2.increment(1); // 300 000 ms more
      expect(copy.status).toMatchObject({ statusType: UserStatusType.OFFLINE, version: 2, lastSeenAt: T0 + HB });
      expect(changes()).toHaveLength(1);
    });

    it(`restore - after a ${name} restore the retention timer clears subscriptions with the time left, not before`, () => {
      const { actor, clock } = original();
      login(actor, 'd1', 'c1');
      actor.step({ type: 'SUBSCRIBE', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'c1', userIDs: ['bob'] });
      actor.step({ type: 'DISCONNECT', policy: policy(), deviceId: 'd1', connId: 'c1' });
      clock.increment(100_000);
      const snap = roundTrip(actor.persistedSnapshot());
      actor.stop();
      const { actor: copy, clock: clock2 } = restored(snap, T0 + 100_000);
      expect(copy.state).toEqual({ offline: 'retainingSubscriptions' });
      clock2.increment(RETAIN - 100_000 - 1); // 499 999 ms more
      expect(copy.context.subscriptions.userIDs).toEqual(['bob']);
      clock2.increment(1); // 500 000 ms more
      expect(copy.context.subscriptions.userIDs).toEqual([]);
      expect(copy.state).toEqual({ offline: 'idle' });
    });

    it(`restore - after a ${name} restore of an UNLOGINED user the retention timer continues`, () => {
      const { actor, clock } = original();
      login(actor, 'd1', 'c1');
      actor.step({ type: 'SUBSCRIBE', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'c1', userIDs: ['bob'] });
      actor.step({ type: 'LOGOUT', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'c1' });
      clock.increment(200_000);
      const snap = roundTrip(actor.persistedSnapshot());
      const { actor: copy, clock: clock2 } = restored(snap, T0 + 200_000);
      clock2.increment(RETAIN - 200_000 - 1);
      expect(copy.context.subscriptions.userIDs).toHaveLength(1);
      clock2.increment(1);
      expect(copy.context.subscriptions.userIDs).toEqual([]);
      expect(copy.status.statusType).toBe(UserStatusType.UNLOGINED);
    });
  });
}

describe('restore - behaviour after restoring', () => {
  it('restore - a kicked user restored elsewhere still refuses UserSigs issued up to the kick (70052)', () => {
    const { actor, clock } = original();
    actor.step({ type: 'KICK', requestId: rid(), policy: policy() });
    clock.increment(5_000);
    const { actor: copy } = restored(viaMsgpack(actor.persistedSnapshot()), T0 + 5_000);
    const loginAt = (sigTime: number) =>
      copy.step({ type: 'LOGIN', requestId: rid(), policy: policy(), deviceId: 'd1', connId: `c${sigTime}`, gatewayId: 'gw', platform: 'web', sigTime });
    expect(loginAt(T0 / 1000).reply).toMatchObject({ ok: false, code: ErrorCode.USERSIG_REVOKED });
    expect(loginAt(T0 / 1000 + 1).reply).toMatchObject({ ok: true });
  });

  it('restore - a snapshot stored before actors kept the revocation restores as never kicked', () => {
    const { actor } = original();
    login(actor, 'd1', 'c1');
    const stored = viaMsgpack(actor.persistedSnapshot()) as unknown as { value: unknown; context: Record<string, unknown> };
    delete stored.context.revokedAt;
    const { actor: copy } = restored(stored as unknown as StoredSnapshot, T0);
    expect(copy.context.revokedAt).toBe(0);
    expect(login(copy, 'd2', 'c2').reply).toMatchObject({ ok: true });
  });

  it('restore - a snapshot stored with one entry per subscription (before they were packed) keeps them, and their age', () => {
    const { actor, clock } = original();
    login(actor, 'd1', 'c1');
    actor.step({ type: 'SUBSCRIBE', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'c1', userIDs: ['bob'] });
    clock.increment(1_000);
    actor.step({ type: 'SUBSCRIBE', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'c1', userIDs: ['carol'] });
    const stored = viaMsgpack(actor.persistedSnapshot()) as unknown as { value: unknown; context: Record<string, unknown> };
    stored.context.subscriptions = [
      { userID: 'bob', subscribedAt: T0 },
      { userID: 'carol', subscribedAt: T0 + 1_000 },
    ];
    const { actor: copy } = restored(viaMsgpack(stored as unknown as StoredSnapshot), T0 + 2_000);
    expect(copy.context.subscriptions).toEqual(actor.context.subscriptions);
    const capped = { ...policy(), limits: { ...DEFAULT_LIMITS, rateLimit: { ...DEFAULT_LIMITS.rateLimit }, subscriptionCap: 2 } };
    const res = copy.step({ type: 'SUBSCRIBE', requestId: rid(), policy: capped, deviceId: 'd1', connId: 'c1', userIDs: ['dave'] });
    expect(res.reply).toMatchObject({ ok: true, evicted: ['bob'] });
  });

  it('restore - the restore itself is not reported as a timer transition that changes the status', () => {
    const { actor } = original();
    login(actor, 'd1', 'c1');
    const { changes } = restored(viaJson(actor.persistedSnapshot()), T0 + 10);
    expect(changes()).toEqual([]);
  });

  it('restore - a heartbeat to the restored actor moves the deadline on the new clock', () => {
    const { actor, clock } = original();
    login(actor, 'd1', 'c1');
    clock.increment(100_000);
    const { actor: copy, clock: clock2 } = restored(viaJson(actor.persistedSnapshot()), T0 + 100_000);
    clock2.increment(200_000);
    const res = copy.step({ type: 'HEARTBEAT', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'c1' });
    expect(res.reply).toMatchObject({ ok: true });
    clock2.increment(HB - 1); // old deadline long passed
    expect(copy.status.statusType).toBe(UserStatusType.ONLINE);
    clock2.increment(1);
    expect(copy.status).toMatchObject({ statusType: UserStatusType.OFFLINE, lastSeenAt: T0 + 300_000 + HB });
  });

  it('restore - the restored actor knows the connections it held', () => {
    const { actor } = original();
    login(actor, 'd1', 'c1');
    const { actor: copy } = restored(viaMsgpack(actor.persistedSnapshot()), T0);
    expect(copy.step({ type: 'QUERY', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'c1', userIDs: ['bob'] }).reply).toMatchObject({ ok: true });
    const stranger = copy.step({ type: 'QUERY', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'zz', userIDs: ['bob'] });
    expect(stranger.reply).toMatchObject({ ok: false, code: ErrorCode.NOT_LOGGED_IN });
  });

  it('restore - devices stored as an ordinary object come back inheriting nothing, so a deviceId `toString` is not taken for one', () => {
    const { actor } = original();
    login(actor, 'd1', 'c1');
    const { actor: copy } = restored(viaJson(actor.persistedSnapshot()), T0);
    expect('toString' in copy.context.devices).toBe(false);
    const res = login(copy, 'toString', 'c2');
    expect(res.kicks).toEqual([]);
    expect(Object.keys(copy.context.devices).sort()).toEqual(['d1', 'toString']);
  });

  it('restore - the restored actor keeps the rate window', () => {
    const { actor } = original();
    login(actor, 'd1', 'c1');
    for (let i = 0; i < DEFAULT_LIMITS.rateLimit.count; i++) {
      actor.step({ type: 'QUERY', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'c1', userIDs: ['bob'] });
    }
    const { actor: copy } = restored(viaJson(actor.persistedSnapshot()), T0 + 1_000);
    const res = copy.step({ type: 'QUERY', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'c1', userIDs: ['bob'] });
    expect(res.reply).toMatchObject({ ok: false, code: ErrorCode.RATE_LIMITED, retryAfterMs: 4_000 });
  });

  it('restore - a replacing login after restore still kicks the old connection with 6208', () => {
    const { actor } = original();
    login(actor, 'd1', 'c1');
    const { actor: copy } = restored(viaJson(actor.persistedSnapshot()), T0 + 5);
    const res = login(copy, 'd1', 'c2');
    expect(res.kicks).toEqual([{ type: 'kick', connId: 'c1', gatewayId: 'gw-c1', code: ErrorCode.KICKED_BY_SAME_DEVICE }]);
  });

  it('restore - a user whose deadline passed while persisted goes OFFLINE as soon as the restored clock runs', () => {
    const { actor } = original();
    login(actor, 'd1', 'c1');
    const { actor: copy, clock: clock2 } = restored(viaJson(actor.persistedSnapshot()), T0 + HB + 50_000);
    clock2.increment(0);
    expect(copy.status.statusType).toBe(UserStatusType.OFFLINE);
  });

  it('restore - two devices keep their own deadlines across a restore', () => {
    const { actor, clock } = original();
    login(actor, 'd1', 'c1');
    clock.increment(50_000);
    login(actor, 'd2', 'c2'); // d2 deadline T0 + 450 000
    clock.increment(50_000);
    const { actor: copy, clock: clock2 } = restored(viaMsgpack(actor.persistedSnapshot()), T0 + 100_000);
    clock2.increment(300_000); // T0 + 400 000: d1 gone
    expect(copy.status.statusType).toBe(UserStatusType.ONLINE);
    expect(Object.keys(copy.context.devices)).toEqual(['d2']);
    clock2.increment(49_999);
    expect(copy.status.statusType).toBe(UserStatusType.ONLINE);
    clock2.increment(1);
    expect(copy.status).toMatchObject({ statusType: UserStatusType.OFFLINE, lastSeenAt: T0 + 450_000 });
  });

  it('restore - a snapshot that xstate persisted (as an earlier version stored it) restores the same user', () => {
    const { actor, clock } = original();
    login(actor, 'd1', 'c1');
    actor.step({ type: 'SET_CUSTOM_STATUS', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'c1', customStatus: 'busy' });
    actor.step({ type: 'SUBSCRIBE', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'c1', userIDs: ['bob'] });
    const machine = createPresenceMachine(clock);
    const earlier = machine.getPersistedSnapshot(machine.resolveState({ value: actor.state as never, context: actor.context }));
    expect(earlier).toHaveProperty('historyValue');
    const { actor: copy } = restored(viaMsgpack(earlier as unknown as StoredSnapshot), T0);
    expect(copy.status).toEqual(actor.status);
    expect(copy.state).toBe('online');
    expect(copy.context).toEqual(actor.context);
  });

  it('restore - the persisted snapshot is plain JSON data', () => {
    const { actor } = original();
    login(actor, 'd1', 'c1');
    const snap = actor.persistedSnapshot();
    expect(viaJson(snap)).toEqual(snap); // nothing lost: no Map, Set, Date or function in it
    expect(JSON.parse(JSON.stringify(snap))).toMatchObject({ value: 'online', context: { userID: 'alice', version: 1 } });
    expect(Object.keys(snap)).toEqual(['value', 'context']);
  });
});

describe('restore - a new user', () => {
  it('restore - new actors do not run the machine\'s initial transitions, which run once per machine', () => {
    const initial = vi.spyOn(StateMachine.prototype, 'getInitialSnapshot');
    try {
      const clock = clockAt(T0);
      new UserActor({ sdkAppID: APP, userID: 'alice', clock }); // the first on a clock makes its machine
      const perMachine = initial.mock.calls.length;
      for (const userID of ['bob', 'carol']) new UserActor({ sdkAppID: APP, userID, clock });
      expect(initial).toHaveBeenCalledTimes(perMachine);
    } finally {
      initial.mockRestore();
    }
  });

  it('restore - a new actor starts where xstate\'s initial snapshot of the machine is, for any user, with no timer armed', () => {
    for (const [sdkAppID, userID] of [[APP, 'alice'], [7, 'bob@example.com']] as const) {
      const clock = clockAt(T0);
      const timers: Transition[] = [];
      const actor = new UserActor({ sdkAppID, userID, clock, observer: { onTimerTransition: (_actor, t) => void timers.push(t) } });
      const reference = createActor(createPresenceMachine(clock), { input: { sdkAppID, userID } }).start().getSnapshot();
      expect(actor.state).toEqual(reference.value);
      expect(actor.context).toEqual(reference.context);
      expect(actor.status).toMatchObject({ userID, statusType: UserStatusType.UNLOGINED, version: 0 });
      clock.increment(RETAIN + HB);
      expect(timers).toEqual([]);
      expect(login(actor, 'd1', 'c1').after).toMatchObject({ statusType: UserStatusType.ONLINE, version: 1 });
    }
  });
});
