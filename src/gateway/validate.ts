import { CUSTOM_STATUS_MAX_BYTES } from '../actors/callPolicy.js';
import { PLATFORMS, type Platform } from '../actors/types.js';
import { invalidParameters, PresenceError } from '../errors.js';
import { OPERATIONS, type ClientFrame, type LoginArgs, type Operation } from '../protocol.js';

/**
 * Checks at the edge: everything a device sends is validated here, before it
 * reaches an actor, and refused with 6017 and a description of what to fix.
 */

const USER_ID = /^[A-Za-z0-9_.@-]{1,32}$/;
const DEVICE_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

/** No app may raise its per-call limits above this; bounds the work of one frame. */
export const MAX_IDS_PER_CALL = 1_000;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);

export function parseFrame(value: unknown): ClientFrame {
  if (!isRecord(value)) throw invalidParameters('a frame must be a msgpack map');
  if (value.t === 'hb') return { t: 'hb' };
  if (value.t !== 'req') throw invalidParameters(`unknown frame type ${JSON.stringify(value.t)}; expected 'req' or 'hb'`);
  const { id, op, args } = value;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) {
    throw invalidParameters('a request needs an id: a positive integer');
  }
  if (typeof op !== 'string' || !OPERATIONS.includes(op as Operation)) {
    throw new FrameError(id, invalidParameters(`unknown operation ${JSON.stringify(op)}; expected one of ${OPERATIONS.join(', ')}`));
  }
  return { t: 'req', id, op: op as Operation, args };
}

/** A frame that is well-formed enough to answer by id, but not valid. */
export class FrameError extends Error {
  constructor(readonly id: number, readonly error: PresenceError) {
    super(error.message);
    this.name = 'FrameError';
  }
}

export function isValidUserID(value: unknown): value is string {
  return typeof value === 'string' && USER_ID.test(value);
}

export function validateUserID(value: unknown, what = 'userID'): string {
  if (!isValidUserID(value)) {
    throw invalidParameters(`${what} must be 1-32 characters of [A-Za-z0-9_.@-], got ${describe(value)}`);
  }
  return value;
}

/** A list of userIDs no longer than `max`: the length is checked first, so 10 000 ids cost nothing. */
export function validateUserIDList(value: unknown, max: number, { allowEmpty = false } = {}): string[] {
  if (value === ARGS_NOT_A_MAP) throw invalidParameters('args must be a map { userIDList }');
  if (value === undefined && allowEmpty) return [];
  if (!Array.isArray(value)) throw invalidParameters(`userIDList must be an array of userIDs, got ${describe(value)}`);
  if (value.length > Math.min(max, MAX_IDS_PER_CALL)) {
    throw invalidParameters(`userIDList takes at most ${Math.min(max, MAX_IDS_PER_CALL)} userIDs, got ${value.length}`);
  }
  if (value.length === 0 && !allowEmpty) throw invalidParameters('userIDList must not be empty');
  value.forEach((id, i) => validateUserID(id, `userIDList[${i}]`));
  return [...new Set(value as string[])];
}

export function validateCustomStatus(args: unknown): string {
  // Args of another type are a malformed call, not an absent status that would clear the one set.
  if (args !== undefined && args !== null && !isRecord(args)) throw invalidParameters('setSelfStatus args must be a map { customStatus }');
  const value = isRecord(args) ? args.customStatus : undefined;
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw invalidParameters(`customStatus must be a string, got ${describe(value)}`);
  // Counted, not encoded: a buffer per call for its length alone (a lone surrogate counts 3, as encoded).
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > CUSTOM_STATUS_MAX_BYTES) {
    throw invalidParameters(`customStatus is ${bytes} UTF-8 bytes; at most ${CUSTOM_STATUS_MAX_BYTES} are allowed`);
  }
  return value;
}

export function validateLogin(args: unknown): Required<Omit<LoginArgs, 'deviceId'>> & { deviceId?: string } {
  if (!isRecord(args)) throw invalidParameters('login needs { sdkAppID, userID, userSig }');
  const { sdkAppID, userID, userSig, deviceId, platform } = args;
  if (typeof sdkAppID !== 'number' || !Number.isSafeInteger(sdkAppID) || sdkAppID <= 0) {
    throw invalidParameters(`sdkAppID must be a positive integer, got ${describe(sdkAppID)}`);
  }
  validateUserID(userID);
  if (typeof userSig !== 'string' || userSig.length === 0 || userSig.length > 4096) {
    throw invalidParameters('userSig must be a non-empty string of at most 4096 characters');
  }
  if (deviceId !== undefined && (typeof deviceId !== 'string' || !DEVICE_ID.test(deviceId))) {
    throw invalidParameters(`deviceId must be 1-64 characters of [A-Za-z0-9_.:-], got ${describe(deviceId)}`);
  }
  // A user's stored snapshot keys its devices by id, and msgpack readers (msgpackr) rename this
  // one key as a guard against prototype pollution: the device would come back under another id.
  if (deviceId === '__proto__') throw invalidParameters('deviceId __proto__ is reserved');
  if (platform !== undefined && !PLATFORMS.includes(platform as Platform)) {
    throw invalidParameters(`platform must be one of ${PLATFORMS.join(', ')}, got ${describe(platform)}`);
  }
  return {
    sdkAppID,
    userID: userID as string,
    userSig,
    platform: (platform as Platform | undefined) ?? 'other',
    ...(deviceId === undefined ? {} : { deviceId: deviceId as string }),
  };
}

/**
 * Stands for the list of args that are not a map, which `validateUserIDList` refuses (6017). Not
 * refused here: the gateway reads the list before its edition and switch checks, which come first.
 * Not `undefined` either: for unsubscribe that would mean "clear every subscription".
 */
const ARGS_NOT_A_MAP = Symbol('args not a map');

/** The `userIDList` of a call's args, unchecked: for `validateUserIDList`. */
export function listArg(args: unknown): unknown {
  if (args === undefined || args === null) return undefined;
  return isRecord(args) ? args.userIDList : ARGS_NOT_A_MAP;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return value === null ? 'null' : typeof value;
}
