import { UserStatusType, type Device } from './types.js';

/** How many dropped device ids a user remembers; the oldest is forgotten first. */
export const MAX_DROPPED_DEVICES = 32;

/**
 * A user's devices by deviceId are always held in a record made by the functions below: an
 * object of its own constructor, whose prototype has no members. For two reasons:
 * - a deviceId may be `constructor` or `toString` (docs/protocol.md allows [A-Za-z0-9_.:-]),
 *   and must not find Object.prototype's members: taken for a device already logged in, such a
 *   login kicked a "replaced" connection that did not exist;
 * - deviceIds are unique per device, and each one used as a key of an ordinary object adds a
 *   transition to V8's hidden class of `{}`. Past 1 536 of them, every object the process then
 *   builds from `{}` (the rate windows, decoded messages) gets a hidden class of its own: about
 *   200 B of heap per user and property reads that no inline cache can serve. A constructor of
 *   its own keeps those transitions under its own hidden class. (`Object.create(null)` would
 *   too, but makes a dictionary, and reading its values, as the fan-out does for every watcher
 *   of every change, took twice as long: 21 % more CPU per notification in the burst.)
 */
function DeviceRecord(): void {}
DeviceRecord.prototype = Object.create(null) as object;
const newRecord = (): Record<string, Device> => new (DeviceRecord as unknown as new () => Record<string, Device>)();

const NO_DEVICES: Readonly<Record<string, Device>> = Object.freeze(newRecord());

/** `devices` (for one restored from storage: an ordinary object) as a record of the kind above. */
export function deviceRecord(devices: Readonly<Record<string, Device>> = NO_DEVICES): Record<string, Device> {
  return devices instanceof DeviceRecord ? (devices as Record<string, Device>) : copied(devices);
}

export function hasDevice(devices: Readonly<Record<string, Device>>, deviceId: string): boolean {
  return Object.hasOwn(devices, deviceId);
}

export function withDevice(devices: Readonly<Record<string, Device>>, deviceId: string, device: Device): Record<string, Device> {
  const next = copied(devices);
  next[deviceId] = device;
  return next;
}

export function withoutDevice(devices: Readonly<Record<string, Device>>, deviceId: string): Record<string, Device> {
  return copied(devices, deviceId);
}

function copied(devices: Readonly<Record<string, Device>>, leaving?: string): Record<string, Device> {
  const next = newRecord();
  for (const id of Object.keys(devices)) if (id !== leaving) next[id] = devices[id]!;
  return next;
}

/** SPEC.md §2: ONLINE with any device; else OFFLINE if any device left without logout. */
export function aggregateStatus(devices: Record<string, Device>, droppedDevices: readonly string[]): UserStatusType {
  if (Object.keys(devices).length > 0) return UserStatusType.ONLINE;
  return droppedDevices.length > 0 ? UserStatusType.OFFLINE : UserStatusType.UNLOGINED;
}

/** The earliest heartbeat deadline, or undefined without devices. */
export function earliestDeadline(devices: Record<string, Device>): number | undefined {
  let earliest: number | undefined;
  for (const device of Object.values(devices)) {
    if (earliest === undefined || device.heartbeatDeadline < earliest) earliest = device.heartbeatDeadline;
  }
  return earliest;
}

/** Splits devices into those still within their deadline and the ids of those past it. */
export function expireDevices(
  devices: Record<string, Device>,
  now: number,
): { alive: Record<string, Device>; expired: string[] } {
  const alive = newRecord();
  const expired: string[] = [];
  for (const [deviceId, device] of Object.entries(devices)) {
    if (device.heartbeatDeadline <= now) expired.push(deviceId);
    else alive[deviceId] = device;
  }
  return { alive, expired };
}

/** No dropped devices: one array shared by every user without any (32 B each otherwise). */
export const NO_DROPPED_DEVICES: readonly string[] = Object.freeze([]);

/** Records devices that left without logout, newest last, bounded. */
export function rememberDropped(dropped: readonly string[], deviceIds: readonly string[]): readonly string[] {
  if (deviceIds.length === 0) return dropped;
  const ids = new Set(deviceIds);
  const next = dropped.filter((id) => !ids.has(id)).concat(deviceIds);
  return next.slice(Math.max(0, next.length - MAX_DROPPED_DEVICES));
}

/** A device that logs in or out again no longer counts as dropped. */
export function forgetDropped(dropped: readonly string[], deviceId: string): readonly string[] {
  if (!dropped.includes(deviceId)) return dropped;
  return dropped.length === 1 ? NO_DROPPED_DEVICES : dropped.filter((id) => id !== deviceId);
}
