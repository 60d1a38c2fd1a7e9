import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import {
  UserActor,
  initialContext,
  UserStatusType,
  type ActorReply,
  type AppPolicy,
  type StepResult,
  type Transition,
} from '../../src/actors/index.js';
import { ErrorCode } from '../../src/errors.js';
import { policy } from '../support/appPolicy.js';

const T0 = 1_700_000_000_000;
const APP = 1400000001;


function makeActor(userID = 'alice') {
  const clock = new SimulatedClock();
  clock.set(T0);
  const timers: Transition[] = [];
  const actor = new UserActor({ sdkAppID: APP, userID, clock, observer: { onTimerTransition: (_actor, t) => void timers.push(t) } });
  timers.length = 0;
  return { clock, actor, timers };
}

let nextRequest = 0;
const rid = (): string => `r${++nextRequest}`;

function login(actor: UserActor, deviceId: string, connId = `${deviceId}-c1`, p: AppPolicy = policy()): StepResult {
  return actor.step({ type: 'LOGIN', requestId: rid(), policy: p, deviceId, connId, gatewayId: `gw-${connId}`, platform: 'web' });
}
/** A login with its UserSig's `TLS.time` (epoch seconds); `undefined` sends none. */
const loginWithSig = (actor: UserActor, deviceId: string, sigTime: number | undefined) =>
  actor.step({
    type: 'LOGIN',
    requestId: rid(),
    policy: policy(),
    deviceId,
    connId: `${deviceId}-c${sigTime}`,
    gatewayId: 'gw',
    platform: 'web',
    ...(sigTime === undefined ? {} : { sigTime }),
  });
const logout = (actor: UserActor, deviceId: string, connId = `${deviceId}-c1`, p: AppPolicy = policy()) =>
  actor.step({ type: 'LOGOUT', requestId: rid(), policy: p, deviceId, connId });
const disconnect = (actor: UserActor, deviceId: string, connId = `${deviceId}-c1`, p: AppPolicy = policy()) =>
  actor.step({ type: 'DISCONNECT', policy: p, deviceId, connId });
const heartbeat = (actor: UserActor, deviceId: string, connId = `${deviceId}-c1`, p: AppPolicy = policy()) =>
  actor.step({ type: 'HEARTBEAT', requestId: rid(), policy: p, deviceId, connId });
const setStatus = (actor: UserActor, deviceId: string, customStatus: string, connId = `${deviceId}-c1`, p: AppPolicy = policy()) =>
  actor.step({ type: 'SET_CUSTOM_STATUS', requestId: rid(), policy: p, deviceId, connId, customStatus });
const query = (actor: UserActor, deviceId: string, userIDs: string[], connId = `${deviceId}-c1`, p: AppPolicy = policy()) =>
  actor.step({ type: 'QUERY', requestId: rid(), policy: p, deviceId, connId, userIDs });
const subscribeTo = (actor: UserActor, deviceId: string, userIDs: string[], connId = `${deviceId}-c1`, p: AppPolicy = policy()) =>
  actor.step({ type: 'SUBSCRIBE', requestId: rid(), policy: p, deviceId, connId, userIDs });
const unsubscribeFrom = (actor: UserActor, deviceId: string, userIDs: string[], connId = `${deviceId}-c1`, p: AppPolicy = policy()) =>
  actor.step({ type: 'UNSUBSCRIBE', requestId: rid(), policy: p, deviceId, connId, userIDs });
const kick = (actor: UserActor, p: AppPolicy = policy()) => actor.step({ type: 'KICK', requestId: rid(), policy: p });

function refusedCode(reply: ActorReply | undefined): number | undefined {
  return reply && !reply.ok ? reply.code : undefined;
}

describe('machine - status model', () => {
  it('machine - a user that never logged in is UNLOGINED with version 0 and lastSeenAt 0', () => {
    const { actor } = makeActor();
    expect(actor.status).toEqual({
      userID: 'alice',
      statusType: UserStatusType.UNLOGINED,
      customStatus: '',
      version: 0,
      lastSeenAt: 0,
    });
  });

  it('machine - login makes the user ONLINE with version 1 and lastSeenAt 0', () => {
    const { actor } = makeActor();
    const res = login(actor, 'd1');
    expect(res.reply).toMatchObject({ type: 'reply', ok: true });
    expect(res.before.statusType).toBe(UserStatusType.UNLOGINED);
    expect(res.after).toEqual({
      userID: 'alice',
      statusType: UserStatusType.ONLINE,
      customStatus: '',
      version: 1,
      lastSeenAt: 0,
    });
    expect(actor.state).toBe('online');
  });

  it('machine - the reply carries the requestId of the request', () => {
    const { actor } = makeActor();
    const res = actor.step({
      type: 'LOGIN',
      requestId: 'req-42',
      policy: policy(),
      deviceId: 'd1',
      connId: 'c1',
      gatewayId: 'g1',
      platform: 'ios',
    });
    expect(res.reply?.requestId).toBe('req-42');
  });

  it('machine - login records the device with its connection, gateway, platform and heartbeat deadline', () => {
    const { actor } = makeActor();
    actor.step({ type: 'LOGIN', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'c1', gatewayId: 'g1', platform: 'android' });
    expect(actor.context.devices).toEqual({
      d1: { connId: 'c1', gatewayId: 'g1', platform: 'android', heartbeatDeadline: T0 + 400_000 },
    });
  });

  it('machine - a second device logging in does not change the public status or version', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    const res = login(actor, 'd2');
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.after).toEqual(res.before);
    expect(res.after.version).toBe(1);
    expect(Object.keys(actor.context.devices).sort()).toEqual(['d1', 'd2']);
  });

  it('machine - actors of one machine in the same state keep their own context and timers', () => {
    // One clock, so one machine: both actors stand on the same resolved snapshot of `online`.
    const clock = new SimulatedClock();
    clock.set(T0);
    const timers: string[] = [];
    const observer = { onTimerTransition: (a: UserActor, t: Transition) => void timers.push(`${a.context.userID}:${t.after.statusType}`) };
    const alice = new UserActor({ sdkAppID: APP, userID: 'alice', clock, observer });
    const bob = new UserActor({ sdkAppID: APP, userID: 'bob', clock, observer });
    login(alice, 'a1');
    login(bob, 'b1', 'b1-c1', policy({}, { heartbeatTimeoutMs: 60_000 }));
    expect(alice.state).toEqual(bob.state);
    expect(setStatus(alice, 'a1', 'in a call').after).toMatchObject({ userID: 'alice', customStatus: 'in a call', version: 2 });
    expect(bob.status).toMatchObject({ userID: 'bob', customStatus: '', version: 1 });
    expect(Object.keys(bob.context.devices)).toEqual(['b1']);
    clock.increment(60_000);
    expect(timers).toEqual([`bob:${UserStatusType.OFFLINE}`]);
    expect(bob.status.statusType).toBe(UserStatusType.OFFLINE);
    expect(alice.status).toMatchObject({ statusType: UserStatusType.ONLINE, customStatus: 'in a call' });
    expect(alice.state).toBe('online');
    expect(alice.persistedSnapshot()).toEqual({ value: 'online', context: alice.context });
    expect(bob.persistedSnapshot().value).toEqual(bob.state);
    expect(bob.state).not.toEqual(alice.state);
  });

  it('machine - a deviceId named like a member of Object.prototype is a device like any other', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    const second = login(actor, 'constructor');
    expect(second.reply).toMatchObject({ ok: true });
    expect(second.kicks).toEqual([]);
    expect(refusedCode(logout(actor, 'toString', 'c9').reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(Object.keys(actor.context.devices).sort()).toEqual(['constructor', 'd1']);
    clock.increment(1_000);
    heartbeat(actor, 'constructor');
    const named: string = 'constructor';
    expect(actor.context.devices[named]?.heartbeatDeadline).toBe(T0 + 1_000 + 400_000);
    // Every record of devices the actor makes inherits nothing (see src/actors/devices.ts).
    expect('toString' in actor.context.devices).toBe(false);
    expect(logout(actor, 'constructor').reply).toMatchObject({ ok: true });
    expect('toString' in actor.context.devices).toBe(false);
    expect(Object.keys(actor.context.devices)).toEqual(['d1']);
  });

  it('machine - with two devices, one dropping leaves the user ONLINE', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    login(actor, 'd2');
    const res = disconnect(actor, 'd1');
    expect(res.after.statusType).toBe(UserStatusType.ONLINE);
    expect(res.after.version).toBe(1);
    expect(Object.keys(actor.context.devices)).toEqual(['d2']);
    expect(actor.context.droppedDevices).toEqual(['d1']);
  });

  it('machine - with two devices, one logging out leaves the user ONLINE', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    login(actor, 'd2');
    const res = logout(actor, 'd1');
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.after.statusType).toBe(UserStatusType.ONLINE);
    expect(res.after.version).toBe(1);
    expect(Object.keys(actor.context.devices)).toEqual(['d2']);
  });

  it('machine - last device dropping makes the user OFFLINE', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    clock.increment(5_000);
    const res = disconnect(actor, 'd1');
    expect(res.after).toEqual({
      userID: 'alice',
      statusType: UserStatusType.OFFLINE,
      customStatus: '',
      version: 2,
      lastSeenAt: T0 + 5_000,
    });
    expect(actor.state).toEqual({ offline: 'idle' });
  });

  it('machine - the only device logging out makes the user UNLOGINED', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    clock.increment(7_000);
    const res = logout(actor, 'd1');
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.after).toEqual({
      userID: 'alice',
      statusType: UserStatusType.UNLOGINED,
      customStatus: '',
      version: 2,
      lastSeenAt: T0 + 7_000,
    });
    expect(actor.state).toEqual({ unlogined: 'idle' });
  });

  it('machine - every device logging out (none dropped) makes the user UNLOGINED', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    login(actor, 'd2');
    logout(actor, 'd1');
    const res = logout(actor, 'd2');
    expect(res.after.statusType).toBe(UserStatusType.UNLOGINED);
    expect(res.after.version).toBe(2);
  });

  it('machine - one device dropped then the other logging out makes the user OFFLINE', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    login(actor, 'd2');
    disconnect(actor, 'd1');
    const res = logout(actor, 'd2');
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.after.statusType).toBe(UserStatusType.OFFLINE);
    expect(res.after.version).toBe(2);
    expect(actor.state).toMatchObject({ offline: expect.any(String) });
  });

  it('machine - a dropped device that logs in again and logs out leaves the user UNLOGINED', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    disconnect(actor, 'd1');
    login(actor, 'd1', 'd1-c2');
    expect(actor.context.droppedDevices).toEqual([]);
    const res = logout(actor, 'd1', 'd1-c2');
    expect(res.after.statusType).toBe(UserStatusType.UNLOGINED);
  });

  it('machine - logging in again after OFFLINE makes the user ONLINE with lastSeenAt 0 and a new version', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    disconnect(actor, 'd1');
    clock.increment(1_000);
    const res = login(actor, 'd1', 'd1-c2');
    expect(res.before.statusType).toBe(UserStatusType.OFFLINE);
    expect(res.after).toMatchObject({ statusType: UserStatusType.ONLINE, version: 3, lastSeenAt: 0 });
  });

  it('machine - logging in again after UNLOGINED makes the user ONLINE with lastSeenAt 0 and a new version', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    logout(actor, 'd1');
    const res = login(actor, 'd1');
    expect(res.after).toMatchObject({ statusType: UserStatusType.ONLINE, version: 3, lastSeenAt: 0 });
  });

  it('machine - lastSeenAt is the time the user last stopped being ONLINE', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    clock.increment(1_000);
    logout(actor, 'd1');
    expect(actor.status.lastSeenAt).toBe(T0 + 1_000);
    clock.increment(1_000);
    login(actor, 'd1');
    clock.increment(1_000);
    disconnect(actor, 'd1');
    expect(actor.status.lastSeenAt).toBe(T0 + 3_000);
  });
});

describe('machine - custom status', () => {
  it('machine - setting a custom status bumps the version by one', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    const res = setStatus(actor, 'd1', 'listening to music');
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.after).toMatchObject({ statusType: UserStatusType.ONLINE, customStatus: 'listening to music', version: 2 });
  });

  it('machine - setting the same custom status again does not bump the version', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    setStatus(actor, 'd1', 'busy');
    const res = setStatus(actor, 'd1', 'busy');
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.after.version).toBe(2);
    expect(res.after).toEqual(res.before);
  });

  it("machine - setting '' clears the custom status and bumps the version", () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    setStatus(actor, 'd1', 'busy');
    const res = setStatus(actor, 'd1', '');
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.after).toMatchObject({ customStatus: '', version: 3 });
  });

  it("machine - clearing with '' when nothing is set does not bump the version", () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    const res = setStatus(actor, 'd1', '');
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.after.version).toBe(1);
  });

  it('machine - changing the custom status to a different text bumps the version each time', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    setStatus(actor, 'd1', 'a');
    setStatus(actor, 'd1', 'b');
    const res = setStatus(actor, 'd1', 'c');
    expect(res.after).toMatchObject({ customStatus: 'c', version: 4 });
  });

  it('machine - any logged-in device may set the shared custom status', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    login(actor, 'd2');
    setStatus(actor, 'd1', 'from d1');
    const res = setStatus(actor, 'd2', 'from d2');
    expect(res.after.customStatus).toBe('from d2');
  });

  it('machine - setting a custom status is not rate limited', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    for (let i = 0; i < 50; i++) {
      const res = setStatus(actor, 'd1', `s${i}`);
      expect(res.reply).toMatchObject({ ok: true });
    }
    expect(actor.status).toMatchObject({ customStatus: 's49', version: 51 });
  });

  it('machine - setting a custom status works on a basic edition app with the switch off', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    const res = setStatus(actor, 'd1', 'x', 'd1-c1', policy({ edition: 'basic', userStatusEnabled: false }));
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.after.customStatus).toBe('x');
  });

  it('machine - the custom status is cleared when the last device drops, in the same version bump as OFFLINE', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    setStatus(actor, 'd1', 'busy');
    const res = disconnect(actor, 'd1');
    expect(res.before).toMatchObject({ customStatus: 'busy', version: 2 });
    expect(res.after).toMatchObject({ statusType: UserStatusType.OFFLINE, customStatus: '', version: 3 });
  });

  it('machine - the custom status is cleared when the last device logs out', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    setStatus(actor, 'd1', 'busy');
    const res = logout(actor, 'd1');
    expect(res.after).toMatchObject({ statusType: UserStatusType.UNLOGINED, customStatus: '', version: 3 });
  });

  it('machine - the custom status stays while another device is still online', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    login(actor, 'd2');
    setStatus(actor, 'd1', 'busy');
    disconnect(actor, 'd1');
    expect(actor.status).toMatchObject({ statusType: UserStatusType.ONLINE, customStatus: 'busy', version: 2 });
  });

  it('machine - the custom status does not come back after logging in again', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    setStatus(actor, 'd1', 'busy');
    disconnect(actor, 'd1');
    const res = login(actor, 'd1', 'd1-c2');
    expect(res.after.customStatus).toBe('');
  });

  it('machine - setting a custom status while OFFLINE is refused with 6014', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    disconnect(actor, 'd1');
    const res = setStatus(actor, 'd1', 'x');
    expect(refusedCode(res.reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(res.after).toEqual(res.before);
  });
});

describe('machine - heartbeat', () => {
  it('machine - a heartbeat moves the device deadline to now + heartbeatTimeoutMs', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    clock.increment(30_000);
    const res = heartbeat(actor, 'd1');
    expect(res.reply).toMatchObject({ ok: true });
    expect(actor.context.devices.d1?.heartbeatDeadline).toBe(T0 + 30_000 + 400_000);
  });

  it('machine - a heartbeat uses the heartbeatTimeoutMs of the policy it carries', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    clock.increment(1_000);
    heartbeat(actor, 'd1', 'd1-c1', policy({}, { heartbeatTimeoutMs: 60_000 }));
    expect(actor.context.devices.d1?.heartbeatDeadline).toBe(T0 + 61_000);
  });

  it('machine - a heartbeat only moves the deadline of its own device', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    login(actor, 'd2');
    clock.increment(10_000);
    heartbeat(actor, 'd1');
    expect(actor.context.devices.d1?.heartbeatDeadline).toBe(T0 + 410_000);
    expect(actor.context.devices.d2?.heartbeatDeadline).toBe(T0 + 400_000);
  });

  it('machine - a heartbeat does not change the public status', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    clock.increment(10_000);
    const res = heartbeat(actor, 'd1');
    expect(res.after).toEqual(res.before);
  });

  it('machine - a heartbeat from an unknown connection is refused with 6014 and moves nothing', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    clock.increment(10_000);
    const res = heartbeat(actor, 'd1', 'other-conn');
    expect(refusedCode(res.reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(actor.context.devices.d1?.heartbeatDeadline).toBe(T0 + 400_000);
  });

  it('machine - a heartbeat while UNLOGINED is refused with 6014', () => {
    const { actor } = makeActor();
    const res = heartbeat(actor, 'd1');
    expect(refusedCode(res.reply)).toBe(ErrorCode.NOT_LOGGED_IN);
  });
});

describe('machine - unknown connections', () => {
  it('machine - every call while UNLOGINED is refused with 6014', () => {
    const { actor } = makeActor();
    expect(refusedCode(query(actor, 'd1', ['bob']).reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(refusedCode(subscribeTo(actor, 'd1', ['bob']).reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(refusedCode(unsubscribeFrom(actor, 'd1', []).reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(refusedCode(setStatus(actor, 'd1', 'x').reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(refusedCode(logout(actor, 'd1').reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(actor.status.version).toBe(0);
  });

  it('machine - every call while OFFLINE is refused with 6014', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    disconnect(actor, 'd1');
    expect(refusedCode(query(actor, 'd1', ['bob']).reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(refusedCode(subscribeTo(actor, 'd1', ['bob']).reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(refusedCode(unsubscribeFrom(actor, 'd1', []).reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(refusedCode(logout(actor, 'd1').reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(actor.status.statusType).toBe(UserStatusType.OFFLINE);
  });

  it('machine - calls from a connection the actor does not hold are refused with 6014 while ONLINE', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    expect(refusedCode(query(actor, 'd1', ['bob'], 'stranger').reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(refusedCode(subscribeTo(actor, 'd1', ['bob'], 'stranger').reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(refusedCode(unsubscribeFrom(actor, 'd1', [], 'stranger').reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(refusedCode(setStatus(actor, 'd1', 'x', 'stranger').reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(actor.context.subscriptions.userIDs).toEqual([]);
    expect(actor.status.customStatus).toBe('');
  });

  it('machine - calls naming a device that is not logged in are refused with 6014', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    expect(refusedCode(query(actor, 'd9', ['bob']).reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(refusedCode(setStatus(actor, 'd9', 'x').reply)).toBe(ErrorCode.NOT_LOGGED_IN);
  });

  it('machine - a logout from an unknown connection is refused with 6014 and removes nothing', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    const res = logout(actor, 'd1', 'stranger');
    expect(refusedCode(res.reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(actor.status.statusType).toBe(UserStatusType.ONLINE);
    expect(Object.keys(actor.context.devices)).toEqual(['d1']);
  });

  it('machine - a disconnect from an unknown connection is ignored', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    const res = disconnect(actor, 'd1', 'stranger');
    expect(res.reply).toBeUndefined();
    expect(res.after).toEqual(res.before);
    expect(actor.context.droppedDevices).toEqual([]);
  });

  it('machine - a disconnect while UNLOGINED changes nothing', () => {
    const { actor } = makeActor();
    const res = disconnect(actor, 'd1');
    expect(res.after).toEqual(res.before);
    expect(actor.status.statusType).toBe(UserStatusType.UNLOGINED);
    expect(actor.context.droppedDevices).toEqual([]);
  });
});

describe('machine - same device', () => {
  it('machine - a second login with the same deviceId kicks the old connection with 6208', () => {
    const { actor } = makeActor();
    actor.step({ type: 'LOGIN', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'old', gatewayId: 'gw-A', platform: 'web' });
    const res = actor.step({ type: 'LOGIN', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'new', gatewayId: 'gw-B', platform: 'web' });
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.kicks).toEqual([{ type: 'kick', connId: 'old', gatewayId: 'gw-A', code: ErrorCode.KICKED_BY_SAME_DEVICE }]);
  });

  it('machine - the replacing login holds the device and leaves the public status unchanged', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1', 'old');
    clock.increment(10_000);
    const res = login(actor, 'd1', 'new');
    expect(res.after).toEqual(res.before);
    expect(res.after.version).toBe(1);
    expect(actor.context.devices).toEqual({
      d1: { connId: 'new', gatewayId: 'gw-new', platform: 'web', heartbeatDeadline: T0 + 410_000 },
    });
  });

  it('machine - the same login repeated on its own connection is answered again and kicks nobody', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1', 'c1');
    setStatus(actor, 'd1', 'busy', 'c1');
    clock.increment(10_000);
    const res = login(actor, 'd1', 'c1');
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.kicks).toEqual([]);
    expect(res.after).toEqual(res.before);
    expect(res.after).toMatchObject({ customStatus: 'busy', version: 2 });
    expect(actor.context.devices.d1).toMatchObject({ connId: 'c1', heartbeatDeadline: T0 + 410_000 });
  });

  it('machine - a login with another deviceId kicks nobody', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    const res = login(actor, 'd2');
    expect(res.kicks).toEqual([]);
  });

  it('machine - a late DISCONNECT carrying the replaced connId is ignored', () => {
    const { actor } = makeActor();
    login(actor, 'd1', 'old');
    login(actor, 'd1', 'new');
    const res = disconnect(actor, 'd1', 'old');
    expect(res.after).toEqual(res.before);
    expect(res.after.statusType).toBe(UserStatusType.ONLINE);
    expect(actor.context.devices.d1?.connId).toBe('new');
    expect(actor.context.droppedDevices).toEqual([]);
  });

  it('machine - calls from the replaced connection are refused with 6014', () => {
    const { actor } = makeActor();
    login(actor, 'd1', 'old');
    login(actor, 'd1', 'new');
    expect(refusedCode(setStatus(actor, 'd1', 'x', 'old').reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(refusedCode(logout(actor, 'd1', 'old').reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(actor.context.devices.d1?.connId).toBe('new');
    expect(setStatus(actor, 'd1', 'y', 'new').reply).toMatchObject({ ok: true });
  });

  it('machine - a DISCONNECT of the replacing connection still makes the user OFFLINE', () => {
    const { actor } = makeActor();
    login(actor, 'd1', 'old');
    login(actor, 'd1', 'new');
    disconnect(actor, 'd1', 'old');
    const res = disconnect(actor, 'd1', 'new');
    expect(res.after.statusType).toBe(UserStatusType.OFFLINE);
  });
});

describe('machine - admin KICK', () => {
  it('machine - KICK makes an ONLINE user UNLOGINED', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    setStatus(actor, 'd1', 'busy');
    clock.increment(2_000);
    const res = kick(actor);
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.after).toEqual({
      userID: 'alice',
      statusType: UserStatusType.UNLOGINED,
      customStatus: '',
      version: 3,
      lastSeenAt: T0 + 2_000,
    });
    expect(actor.state).toMatchObject({ unlogined: expect.any(String) });
  });

  it('machine - KICK kicks every device with 70052', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    login(actor, 'd2');
    login(actor, 'd3');
    const res = kick(actor);
    expect(res.kicks).toHaveLength(3);
    expect(res.kicks.map((k) => k.connId).sort()).toEqual(['d1-c1', 'd2-c1', 'd3-c1']);
    for (const k of res.kicks) {
      expect(k).toEqual({ type: 'kick', connId: k.connId, gatewayId: `gw-${k.connId}`, code: ErrorCode.USERSIG_REVOKED });
    }
  });

  it('machine - KICK forgets every device and dropped device', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    login(actor, 'd2');
    disconnect(actor, 'd1');
    kick(actor);
    expect(actor.context.devices).toEqual({});
    expect(actor.context.droppedDevices).toEqual([]);
  });

  it('machine - after KICK the kicked connections are refused with 6014', () => {
    const { actor } = makeActor();
    login(actor, 'd1');
    kick(actor);
    expect(refusedCode(setStatus(actor, 'd1', 'x').reply)).toBe(ErrorCode.NOT_LOGGED_IN);
    expect(refusedCode(heartbeat(actor, 'd1').reply)).toBe(ErrorCode.NOT_LOGGED_IN);
  });

  it('machine - KICK of an OFFLINE user makes it UNLOGINED with a version bump and no kicks', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    disconnect(actor, 'd1');
    clock.increment(1_000);
    const res = kick(actor);
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.kicks).toEqual([]);
    expect(res.after).toMatchObject({ statusType: UserStatusType.UNLOGINED, version: 3, lastSeenAt: T0 });
  });

  it('machine - KICK of an UNLOGINED user is answered ok and changes nothing', () => {
    const { actor } = makeActor();
    const res = kick(actor);
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.kicks).toEqual([]);
    expect(res.after).toEqual(res.before);
  });

  it('machine - the user can log in again after KICK with a UserSig issued a second later', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    kick(actor);
    clock.increment(1_000);
    const res = loginWithSig(actor, 'd1', T0 / 1000 + 1);
    expect(res.reply).toMatchObject({ ok: true });
    expect(res.after).toMatchObject({ statusType: UserStatusType.ONLINE, version: 3, lastSeenAt: 0 });
  });

  it('machine - after KICK a login with a UserSig issued up to that second is refused with 70052 and changes nothing', () => {
    const { actor, clock } = makeActor();
    login(actor, 'd1');
    clock.increment(1_500);
    kick(actor);
    const kickedAt = actor.context;
    for (const sigTime of [T0 / 1000 - 60, T0 / 1000 + 1, undefined]) {
      const res = loginWithSig(actor, 'd1', sigTime);
      expect(res.reply).toMatchObject({ ok: false, code: ErrorCode.USERSIG_REVOKED });
      expect((res.reply as { desc: string }).desc).toMatch(/revoked at .*issue a new one/);
      expect(res.after).toEqual(res.before);
      expect(actor.context).toBe(kickedAt);
    }
    expect(loginWithSig(actor, 'd1', T0 / 1000 + 2).reply).toMatchObject({ ok: true });
  });

  it('machine - KICK of a user never seen revokes too, and an ONLINE user refuses an old UserSig on another device', () => {
    const { actor, clock } = makeActor();
    expect(kick(actor).reply).toMatchObject({ ok: true });
    expect(refusedCode(loginWithSig(actor, 'd1', T0 / 1000).reply)).toBe(ErrorCode.USERSIG_REVOKED);
    clock.increment(1_000);
    expect(loginWithSig(actor, 'd1', T0 / 1000 + 1).reply).toMatchObject({ ok: true });
    const refused = loginWithSig(actor, 'd2', T0 / 1000);
    expect(refusedCode(refused.reply)).toBe(ErrorCode.USERSIG_REVOKED);
    expect(refused.kicks).toEqual([]);
    expect(Object.keys(actor.context.devices)).toEqual(['d1']);
  });

  it('machine - without a KICK a login is not checked against any revocation', () => {
    const { actor } = makeActor();
    expect(loginWithSig(actor, 'd1', 0).reply).toMatchObject({ ok: true });
    expect(actor.context.revokedAt).toBe(0);
  });
});

describe('machine - step results', () => {
  it('machine - the context an actor keeps after each step has every field of the machine\'s context, with its values', () => {
    const { actor } = makeActor();
    const fields = Object.keys(initialContext({ sdkAppID: APP, userID: 'alice' })).sort();
    const steps = [
      () => login(actor, 'd1'),
      () => setStatus(actor, 'd1', 'busy'),
      () => actor.step({ type: 'SUBSCRIBE', requestId: rid(), policy: policy(), deviceId: 'd1', connId: 'd1-c1', userIDs: ['bob'] }),
      () => disconnect(actor, 'd1'),
      () => kick(actor),
    ];
    for (const step of steps) {
      const result = step();
      expect(Object.keys(actor.context).sort()).toEqual(fields);
      expect(result.context).toBe(actor.context);
    }
    expect(actor.context).toMatchObject({ customStatus: '', version: 4, revokedAt: T0, subscriptions: { userIDs: ['bob'] } });
  });

  it('machine - a step reports the kicks of that step only', () => {
    const { actor } = makeActor();
    login(actor, 'd1', 'old');
    const replaced = login(actor, 'd1', 'new');
    expect(replaced.kicks).toHaveLength(1);
    const next = heartbeat(actor, 'd1', 'new');
    expect(next.kicks).toEqual([]);
  });

  it('machine - a step reports the state value and context after the event', () => {
    const { actor } = makeActor();
    const res = login(actor, 'd1');
    expect(res.state).toBe('online');
    expect(res.context.devices.d1?.connId).toBe('d1-c1');
  });

  it('machine - version grows by exactly one per public change over a whole session', () => {
    const { actor } = makeActor();
    const versions: number[] = [];
    versions.push(login(actor, 'd1').after.version); // 1
    versions.push(login(actor, 'd2').after.version); // 1 (no change)
    versions.push(setStatus(actor, 'd1', 'a').after.version); // 2
    versions.push(setStatus(actor, 'd1', 'a').after.version); // 2 (unchanged)
    versions.push(disconnect(actor, 'd1').after.version); // 2 (still online)
    versions.push(logout(actor, 'd2').after.version); // 3 (offline)
    versions.push(login(actor, 'd1', 'd1-c9').after.version); // 4
    expect(versions).toEqual([1, 1, 2, 2, 2, 3, 4]);
  });
});
