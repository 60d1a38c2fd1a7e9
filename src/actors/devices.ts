import { UserStatusType, type Device } from './types.js';

/** How many dropped device ids a user remembers; the oldest is forgotten first. */
export const MAX_DROPPED_DEVICES = 32;

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
  const alive: Record<string, Device> = {};
  const expired: string[] = [];
  for (const [deviceId, device] of Object.entries(devices)) {
    if (device.heartbeatDeadline <= now) expired.push(deviceId);
    else alive[deviceId] = device;
  }
  return { alive, expired };
}

/** Records devices that left without logout, newest last, bounded. */
export function rememberDropped(dropped: readonly string[], deviceIds: readonly string[]): string[] {
  const ids = new Set(deviceIds);
  const next = dropped.filter((id) => !ids.has(id)).concat(deviceIds);
  return next.slice(Math.max(0, next.length - MAX_DROPPED_DEVICES));
}

/** A device that logs in or out again no longer counts as dropped. */
export function forgetDropped(dropped: readonly string[], deviceId: string): string[] {
  return dropped.includes(deviceId) ? dropped.filter((id) => id !== deviceId) : (dropped as string[]);
}
