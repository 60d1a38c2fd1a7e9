import { describe, expect, it } from 'vitest';
import {
  aggregateStatus,
  earliestDeadline,
  expireDevices,
  forgetDropped,
  MAX_DROPPED_DEVICES,
  NO_DROPPED_DEVICES,
  rememberDropped,
} from '../../src/actors/devices.js';
import { publicStatus, statusChanged } from '../../src/actors/publicStatus.js';
import { initialContext } from '../../src/actors/machine.js';
import { UserStatusType, type Device, type UserStatus } from '../../src/actors/types.js';

const device = (heartbeatDeadline: number, connId = `c${heartbeatDeadline}`): Device => ({
  connId,
  gatewayId: 'g',
  platform: 'web',
  heartbeatDeadline,
});

describe('devices - aggregateStatus()', () => {
  it('devices - any connected device makes the user ONLINE', () => {
    expect(aggregateStatus({ d1: device(1) }, [])).toBe(UserStatusType.ONLINE);
  });

  it('devices - a connected device wins over dropped devices', () => {
    expect(aggregateStatus({ d1: device(1) }, ['d2', 'd3'])).toBe(UserStatusType.ONLINE);
  });

  it('devices - no device and a dropped device make the user OFFLINE', () => {
    expect(aggregateStatus({}, ['d1'])).toBe(UserStatusType.OFFLINE);
  });

  it('devices - no device and nothing dropped make the user UNLOGINED', () => {
    expect(aggregateStatus({}, [])).toBe(UserStatusType.UNLOGINED);
  });
});

describe('devices - earliestDeadline()', () => {
  it('devices - earliestDeadline is undefined without devices', () => {
    expect(earliestDeadline({})).toBeUndefined();
  });

  it('devices - earliestDeadline is the smallest heartbeat deadline', () => {
    expect(earliestDeadline({ a: device(300), b: device(100), c: device(200) })).toBe(100);
  });
});

describe('devices - expireDevices()', () => {
  it('devices - a device whose deadline is now has expired', () => {
    expect(expireDevices({ a: device(100) }, 100)).toEqual({ alive: {}, expired: ['a'] });
  });

  it('devices - a device whose deadline is 1 ms ahead is alive', () => {
    const a = device(101);
    expect(expireDevices({ a }, 100)).toEqual({ alive: { a }, expired: [] });
  });

  it('devices - splits devices into alive and expired', () => {
    const b = device(500);
    const result = expireDevices({ a: device(100), b, c: device(50) }, 200);
    expect(result.alive).toEqual({ b });
    expect([...result.expired].sort()).toEqual(['a', 'c']);
  });

  it('devices - expireDevices does not mutate the devices it is given', () => {
    const devices = { a: device(100), b: device(500) };
    expireDevices(devices, 200);
    expect(Object.keys(devices)).toEqual(['a', 'b']);
  });
});

describe('devices - dropped device memory', () => {
  it('devices - rememberDropped appends newest last', () => {
    expect(rememberDropped(['a'], ['b', 'c'])).toEqual(['a', 'b', 'c']);
  });

  it('devices - rememberDropped moves an id already remembered to the end without duplicating it', () => {
    expect(rememberDropped(['a', 'b', 'c'], ['a'])).toEqual(['b', 'c', 'a']);
  });

  it(`devices - rememberDropped keeps at most ${MAX_DROPPED_DEVICES} ids, forgetting the oldest`, () => {
    const many = Array.from({ length: MAX_DROPPED_DEVICES }, (_, i) => `d${i}`);
    const result = rememberDropped(many, ['new']);
    expect(result).toHaveLength(MAX_DROPPED_DEVICES);
    expect(result[0]).toBe('d1');
    expect(result.at(-1)).toBe('new');
  });

  it('devices - forgetDropped removes the id', () => {
    expect(forgetDropped(['a', 'b', 'c'], 'b')).toEqual(['a', 'c']);
  });

  it('devices - forgetDropped of an unknown id keeps the list', () => {
    expect(forgetDropped(['a'], 'zz')).toEqual(['a']);
  });

  it('devices - users without dropped devices share one frozen empty list, and every change makes a new list', () => {
    expect(initialContext({ sdkAppID: 1, userID: 'a' }).droppedDevices).toBe(NO_DROPPED_DEVICES);
    expect(Object.isFrozen(NO_DROPPED_DEVICES)).toBe(true);
    expect(forgetDropped(['a'], 'a')).toBe(NO_DROPPED_DEVICES);
    const held = ['a', 'b'];
    expect(forgetDropped(held, 'c')).toBe(held);
    expect(rememberDropped(held, [])).toBe(held);
    expect(rememberDropped(NO_DROPPED_DEVICES, ['a'])).toEqual(['a']);
    expect(forgetDropped(held, 'a')).toEqual(['b']);
    expect(held).toEqual(['a', 'b']);
    expect(NO_DROPPED_DEVICES).toEqual([]);
  });

  it('devices - forgetting every dropped device turns OFFLINE into UNLOGINED', () => {
    const dropped = forgetDropped(['a'], 'a');
    expect(aggregateStatus({}, dropped)).toBe(UserStatusType.UNLOGINED);
  });
});

describe('publicStatus - derived status', () => {
  it('publicStatus - a fresh context is UNLOGINED with version 0, lastSeenAt 0 and no custom status', () => {
    expect(publicStatus(initialContext({ sdkAppID: 1, userID: 'alice' }))).toEqual({
      userID: 'alice',
      statusType: UserStatusType.UNLOGINED,
      customStatus: '',
      version: 0,
      lastSeenAt: 0,
    });
  });

  it('publicStatus - reflects devices, custom status, version and lastSeenAt of the context', () => {
    const ctx = { ...initialContext({ sdkAppID: 1, userID: 'bob' }), devices: { d: device(9) }, customStatus: 'hi', version: 7 };
    expect(publicStatus(ctx)).toEqual({ userID: 'bob', statusType: UserStatusType.ONLINE, customStatus: 'hi', version: 7, lastSeenAt: 0 });
    const off = { ...initialContext({ sdkAppID: 1, userID: 'bob' }), droppedDevices: ['d'], version: 8, lastSeenAt: 123 };
    expect(publicStatus(off)).toMatchObject({ statusType: UserStatusType.OFFLINE, lastSeenAt: 123 });
  });

  it('publicStatus - statusChanged compares versions', () => {
    const a: UserStatus = { userID: 'u', statusType: 1, customStatus: '', version: 1, lastSeenAt: 0 };
    expect(statusChanged(a, { ...a })).toBe(false);
    expect(statusChanged(a, { ...a, version: 2 })).toBe(true);
  });

  it('publicStatus - the status values are Tencent’s', () => {
    expect(UserStatusType).toEqual({ UNKNOWN: 0, ONLINE: 1, OFFLINE: 2, UNLOGINED: 3 });
  });
});
