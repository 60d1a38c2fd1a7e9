import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import {
  DEFAULT_LIMITS,
  UserActor,
  UserStatusType,
  type AppPolicy,
  type StepResult,
  type Transition,
} from '../../src/actors/index.js';
import { policy } from '../support/appPolicy.js';

const T0 = 1_700_000_000_000;
const APP = 1400000001;
const HB = DEFAULT_LIMITS.heartbeatTimeoutMs; // 400 000
const RETAIN = DEFAULT_LIMITS.subscriptionRetentionMs; // 600 000


function makeActor(userID = 'alice') {
  const clock = new SimulatedClock();
  clock.set(T0);
  const timers: Transition[] = [];
  const actor = new UserActor({ sdkAppID: APP, userID, clock, observer: { onTimerTransition: (_actor, t) => void timers.push(t) } });
  timers.length = 0;
  /** Timer transitions that changed the public status. */
  const changes = () => timers.filter((t) => t.before.version !== t.after.version);
  return { clock, actor, timers, changes };
}

let nextRequest = 0;
const rid = (): string => `r${++nextRequest}`;

function login(actor: UserActor, deviceId: string, connId = `${deviceId}-c1`, p: AppPolicy = policy()): StepResult {
  return actor.step({ type: 'LOGIN', requestId: rid(), policy: p, deviceId, connId, gatewayId: `gw-${connId}`, platform: 'web' });
}
const logout = (actor: UserActor, deviceId: string, connId = `${deviceId}-c1`, p: AppPolicy = policy()) =>
  actor.step({ type: 'LOGOUT', requestId: rid(), policy: p, deviceId, connId });
const disconnect = (actor: UserActor, deviceId: string, connId = `${deviceId}-c1`, p: AppPolicy = policy()) =>
  actor.step({ type: 'DISCONNECT', policy: p, deviceId, connId });
const heartbeat = (actor: UserActor, deviceId: string, connId = `${deviceId}-c1`, p: AppPolicy = policy()) =>
  actor.step({ type: 'HEARTBEAT', requestId: rid(), policy: p, deviceId, connId });
const setStatus = (actor: UserActor, deviceId: string, customStatus: string, connId = `${deviceId}-c1`) =>
  actor.step({ type: 'SET_CUSTOM_STATUS', requestId: rid(), policy: policy(), deviceId, connId, customStatus });
const subscribeTo = (actor: UserActor, deviceId: string, userIDs: string[], connId = `${deviceId}-c1`, p: AppPolicy = policy()) =>
  actor.step({ type: 'SUBSCRIBE', requestId: rid(), policy: p, deviceId, connId, userIDs });
const kick = (actor: UserActor, p: AppPolicy = policy()) => actor.step({ type: 'KICK', requestId: rid(), policy: p });

const subscribed = (actor: UserActor) => [...actor.context.subscriptions.userIDs];

describe('heartbeat - timeout', () => {
  it('heartbeat - the user is still ONLINE 1 ms before heartbeatTimeoutMs', () => {
    const { actor, clock, changes } = makeActor();
    login(actor, 'd1');
    clock.increment(HB - 1);
    expect(actor.status.statusType).toBe(UserStatusType.ONLINE);
    expect(changes()).toEqual([]);
  });

  it('heartbeat - no heartbeat for exactly heartbeatTimeoutMs makes the user OFFLINE with lastSeenAt at that time', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    clock.increment(HB - 1);
    clock.increment(1);
    expect(actor.status).toEqual({
      userID: 'alice',
      statusType: UserStatusType.OFFLINE,
      customStatus: '',
      version: 2,
      lastSeenAt: T0 + HB,
    });
    expect(actor.state).toMatchObject({ offline: expect.any(String) });
  });

  it('heartbeat - the timeout is reported through onTimerTransition', () => {
    const { actor, clock, changes } = makeActor();
    login(actor, 'd1');
    clock.increment(HB);
    expect(changes()).toHaveLength(1);
    const [t] = changes();
    expect(t?.before).toMatchObject({ statusType: UserStatusType.ONLINE, version: 1 });
    expect(t?.after).toMatchObject({ statusType: UserStatusType.OFFLINE, version: 2, lastSeenAt: T0 + HB });
    // The timed-out connection is closed (6014: no longer logged in), so the device reconnects.
    expect(t?.kicks).toEqual([{ type: 'kick', connId: 'd1-c1', gatewayId: 'gw-d1-c1', code: 6014 }]);
  });

  it('heartbeat - one observer serves many actors, and each timeout names the actor that made it', () => {
    const clock = new SimulatedClock();
    clock.set(T0);
    const reported: Array<[string, number]> = [];
    const observer = { onTimerTransition: (actor: UserActor, t: Transition) => void reported.push([actor.context.userID, t.after.statusType]) };
    const alice = new UserActor({ sdkAppID: APP, userID: 'alice', clock, observer });
    const bob = new UserActor({ sdkAppID: APP, userID: 'bob', clock, observer });
    login(alice, 'd1');
    clock.increment(1_000);
    login(bob, 'd1');
    clock.increment(HB - 1_000);
    expect(reported).toEqual([['alice', UserStatusType.OFFLINE]]);
    clock.increment(1_000);
    expect(reported).toEqual([
      ['alice', UserStatusType.OFFLINE],
      ['bob', UserStatusType.OFFLINE],
    ]);
  });

  it('heartbeat - a timed-out device is removed and remembered as dropped', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    clock.increment(HB);
    expect(actor.context.devices).toEqual({});
    expect(actor.context.droppedDevices).toEqual(['d1']);
  });

  it('heartbeat - the timeout clears the custom status in the same version bump', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    setStatus(actor, 'd1', 'busy');
    clock.increment(HB);
    expect(actor.status).toMatchObject({ statusType: UserStatusType.OFFLINE, customStatus: '', version: 3 });
  });

  it('heartbeat - the timeout takes milliseconds of real time', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    const started = performance.now();
    clock.increment(HB);
    expect(actor.status.statusType).toBe(UserStatusType.OFFLINE);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('heartbeat - a heartbeat postpones the timeout to heartbeatTimeoutMs after it', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    clock.increment(300_000);
    heartbeat(actor, 'd1');
    clock.increment(HB - 1); // T0 + 699 999
    expect(actor.status.statusType).toBe(UserStatusType.ONLINE);
    clock.increment(1); // T0 + 700 000
    expect(actor.status).toMatchObject({ statusType: UserStatusType.OFFLINE, lastSeenAt: T0 + 300_000 + HB });
  });

  it('heartbeat - regular heartbeats keep the user ONLINE indefinitely', () => {
    const { actor, clock, changes } = makeActor();
    login(actor, 'd1');
    for (let i = 0; i < 100; i++) {
      clock.increment(DEFAULT_LIMITS.heartbeatIntervalMs);
      heartbeat(actor, 'd1');
    }
    clock.increment(HB - 1);
    expect(actor.status.statusType).toBe(UserStatusType.ONLINE);
    expect(changes()).toEqual([]);
  });

  it('heartbeat - the timeout follows the heartbeatTimeoutMs of the app policy', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1', 'd1-c1', policy({}, { heartbeatTimeoutMs: 10_000 }));
    clock.increment(9_999);
    expect(actor.status.statusType).toBe(UserStatusType.ONLINE);
    clock.increment(1);
    expect(actor.status).toMatchObject({ statusType: UserStatusType.OFFLINE, lastSeenAt: T0 + 10_000 });
  });

  it('heartbeat - one of two devices timing out leaves the user ONLINE', () => {
    const { actor, clock, changes } = makeActor();
    login(actor, 'd1');
    login(actor, 'd2');
    clock.increment(100_000);
    heartbeat(actor, 'd2');
    clock.increment(HB - 100_000); // d1 deadline
    expect(actor.status).toMatchObject({ statusType: UserStatusType.ONLINE, version: 1, lastSeenAt: 0 });
    expect(Object.keys(actor.context.devices)).toEqual(['d2']);
    expect(actor.context.droppedDevices).toEqual(['d1']);
    expect(changes()).toEqual([]);
  });

  it('heartbeat - after one device timed out the other still times out at its own deadline', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    login(actor, 'd2');
    clock.increment(100_000);
    heartbeat(actor, 'd2'); // d2 deadline T0 + 500 000
    clock.increment(HB - 100_000); // T0 + 400 000: d1 gone
    clock.increment(99_999); // T0 + 499 999
    expect(actor.status.statusType).toBe(UserStatusType.ONLINE);
    clock.increment(1); // T0 + 500 000
    expect(actor.status).toMatchObject({ statusType: UserStatusType.OFFLINE, version: 2, lastSeenAt: T0 + 500_000 });
    expect([...actor.context.droppedDevices].sort()).toEqual(['d1', 'd2']);
  });

  it('heartbeat - a device timing out then the other logging out makes the user OFFLINE', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    clock.increment(1_000);
    login(actor, 'd2');
    clock.increment(HB - 1_000); // d1 times out
    const res = logout(actor, 'd2');
    expect(res.after.statusType).toBe(UserStatusType.OFFLINE);
  });

  it('heartbeat - two devices with the same deadline time out together in one change', () => {
    const { actor, clock, changes } = makeActor();
    login(actor, 'd1');
    login(actor, 'd2');
    clock.increment(HB);
    expect(actor.status).toMatchObject({ statusType: UserStatusType.OFFLINE, version: 2 });
    expect(changes()).toHaveLength(1);
  });

  it('heartbeat - a replacing login restarts the deadline of the device', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1', 'old');
    clock.increment(300_000);
    login(actor, 'd1', 'new');
    clock.increment(HB - 1); // T0 + 699 999
    expect(actor.status.statusType).toBe(UserStatusType.ONLINE);
    clock.increment(1);
    expect(actor.status.statusType).toBe(UserStatusType.OFFLINE);
  });

  it('heartbeat - no timer fires after a clean logout', () => {
    const { actor, clock, timers } = makeActor();
    login(actor, 'd1');
    logout(actor, 'd1');
    clock.increment(HB * 3);
    expect(timers).toEqual([]);
    expect(actor.status).toMatchObject({ statusType: UserStatusType.UNLOGINED, version: 2, lastSeenAt: T0 });
  });

  it('heartbeat - no timer fires after the device dropped', () => {
    const { actor, clock, timers } = makeActor();
    login(actor, 'd1');
    clock.increment(5);
    disconnect(actor, 'd1');
    clock.increment(HB * 3);
    expect(timers).toEqual([]);
    expect(actor.status).toMatchObject({ statusType: UserStatusType.OFFLINE, version: 2, lastSeenAt: T0 + 5 });
  });
});

describe('retention - subscriptions after leaving ONLINE', () => {
  it('retention - subscriptions are kept for subscriptionRetentionMs after the user drops', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    subscribeTo(actor, 'd1', ['bob', 'carol']);
    disconnect(actor, 'd1');
    expect(actor.context.retentionDeadline).toBe(T0 + RETAIN);
    clock.increment(RETAIN - 1);
    expect(subscribed(actor)).toEqual(['bob', 'carol']);
  });

  it('retention - subscriptions are cleared exactly subscriptionRetentionMs after the user drops', () => {
    const { actor, clock, timers } = makeActor();
    login(actor, 'd1');
    subscribeTo(actor, 'd1', ['bob']);
    disconnect(actor, 'd1');
    clock.increment(RETAIN - 1);
    clock.increment(1);
    expect(subscribed(actor)).toEqual([]);
    expect(actor.context.retentionDeadline).toBe(0);
    expect(actor.state).toEqual({ offline: 'idle' });
    // The clearing is a timer transition but not a public change.
    expect(timers.at(-1)?.context.subscriptions.userIDs).toEqual([]);
    expect(timers.at(-1)?.after.version).toBe(2);
  });

  it('retention - subscriptions are kept and cleared likewise after the last device logs out', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    subscribeTo(actor, 'd1', ['bob']);
    logout(actor, 'd1');
    expect(actor.status.statusType).toBe(UserStatusType.UNLOGINED);
    clock.increment(RETAIN - 1);
    expect(subscribed(actor)).toEqual(['bob']);
    clock.increment(1);
    expect(subscribed(actor)).toEqual([]);
    expect(actor.state).toEqual({ unlogined: 'idle' });
  });

  it('retention - subscriptions are kept for subscriptionRetentionMs after a heartbeat timeout', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    subscribeTo(actor, 'd1', ['bob']);
    clock.increment(HB); // OFFLINE by heartbeat timeout at T0 + 400 000
    expect(actor.status.statusType).toBe(UserStatusType.OFFLINE);
    clock.increment(1);
    expect(subscribed(actor)).toEqual(['bob']);
    clock.increment(RETAIN - 2);
    expect(subscribed(actor)).toEqual(['bob']);
    clock.increment(1);
    expect(subscribed(actor)).toEqual([]);
  });

  it('retention - a heartbeat timeout sets the retention deadline subscriptionRetentionMs ahead', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    subscribeTo(actor, 'd1', ['bob']);
    clock.increment(HB);
    expect(actor.context.retentionDeadline).toBe(T0 + HB + RETAIN);
  });

  it('retention - subscriptions are kept after an admin KICK and cleared after subscriptionRetentionMs', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    subscribeTo(actor, 'd1', ['bob']);
    kick(actor);
    clock.increment(RETAIN - 1);
    expect(subscribed(actor)).toEqual(['bob']);
    clock.increment(1);
    expect(subscribed(actor)).toEqual([]);
  });

  it('retention - KICK of an OFFLINE user keeps the retention deadline it already had', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    subscribeTo(actor, 'd1', ['bob']);
    disconnect(actor, 'd1');
    clock.increment(100_000);
    kick(actor);
    clock.increment(RETAIN - 100_000 - 1);
    expect(subscribed(actor)).toEqual(['bob']);
    clock.increment(1);
    expect(subscribed(actor)).toEqual([]);
  });

  it('retention - the retention follows the subscriptionRetentionMs of the app policy', () => {
    const { actor, clock } = makeActor();
    const p = policy({}, { subscriptionRetentionMs: 20_000 });
    login(actor, 'd1', 'd1-c1', p);
    subscribeTo(actor, 'd1', ['bob'], 'd1-c1', p);
    disconnect(actor, 'd1', 'd1-c1', p);
    clock.increment(19_999);
    expect(subscribed(actor)).toEqual(['bob']);
    clock.increment(1);
    expect(subscribed(actor)).toEqual([]);
  });

  it('retention - coming back ONLINE before the deadline keeps the subscriptions for good', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    subscribeTo(actor, 'd1', ['bob']);
    disconnect(actor, 'd1');
    clock.increment(RETAIN - 1);
    login(actor, 'd1', 'd1-c2');
    expect(actor.context.retentionDeadline).toBe(0);
    for (let i = 0; i < 40; i++) {
      clock.increment(30_000);
      heartbeat(actor, 'd1', 'd1-c2');
    }
    expect(subscribed(actor)).toEqual(['bob']);
  });

  it('retention - leaving ONLINE again after coming back starts a new full retention period', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    subscribeTo(actor, 'd1', ['bob']);
    disconnect(actor, 'd1');
    clock.increment(500_000);
    login(actor, 'd1', 'd1-c2');
    clock.increment(1_000);
    disconnect(actor, 'd1', 'd1-c2');
    clock.increment(RETAIN - 1);
    expect(subscribed(actor)).toEqual(['bob']);
    clock.increment(1);
    expect(subscribed(actor)).toEqual([]);
  });

  it('retention - a user without subscriptions arms no retention', () => {
    const { actor, clock, timers } = makeActor();
    login(actor, 'd1');
    disconnect(actor, 'd1');
    expect(actor.context.retentionDeadline).toBe(0);
    expect(actor.state).toEqual({ offline: 'idle' });
    clock.increment(RETAIN * 2);
    expect(timers).toEqual([]);
  });

  it('retention - the user is in retainingSubscriptions while subscriptions are retained', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    subscribeTo(actor, 'd1', ['bob']);
    disconnect(actor, 'd1');
    expect(actor.state).toEqual({ offline: 'retainingSubscriptions' });
  });

  it('retention - clearing the retained subscriptions does not bump the version', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    subscribeTo(actor, 'd1', ['bob']);
    disconnect(actor, 'd1');
    const before = actor.status;
    clock.increment(RETAIN);
    expect(actor.status).toEqual(before);
  });
});
