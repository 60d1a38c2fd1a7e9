import { Packr, Unpackr } from 'msgpackr';

// Written as records, with no shared structures: each message defines the shapes it uses inline,
// so every message still stands alone (nodes of different versions and restarted processes decode
// each other, as a maps-only reader decodes records too), while a list of same-shaped objects (a
// tick's statuses, a gateway's pushes) names its keys once, not once per object.
const packr = new Packr({ useRecords: true, moreTypes: false });

// Read by a reader that keeps no record definitions from one value to the next. A records
// reader reads plain msgpack's integers 64-127 (bytes 0x40-0x7f) as ids of the records it
// decoded last, and in a sequence it does not clear them first: values stored as plain maps
// by an earlier version would then misread. Maps decode as objects, as they were written.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

export const encode = (value: unknown): Uint8Array => packr.pack(value);
export const decode = <T>(data: Uint8Array): T => unpackr.unpack(data) as T;

/**
 * A decoded string as a string of its own, for one that outlives its message. msgpackr's native
 * reader decodes all of a message's strings as one string and hands out slices of it, so each
 * kept slice keeps the whole text alive: a device's connection and gateway ids, kept by its
 * actor, held their login command's 160 B. Strings under 13 characters are copies already.
 */
export const ownString = (text: string): string => (text.length < 13 ? text : Buffer.from(text, 'utf8').toString('utf8'));

/** Encodes values back to back in one buffer, so that a reader may decode the first alone. */
export const encodeSequence = (...values: unknown[]): Uint8Array => Buffer.concat(values.map((value) => packr.pack(value)));

/** Every value of a buffer written by `encodeSequence` (one, for a buffer written by `encode`). */
export const decodeSequence = (data: Uint8Array): unknown[] => unpackr.unpackMultiple(data) as unknown[];

/** The first value of such a buffer, without decoding the rest. */
export function decodeFirst<T>(data: Uint8Array): T {
  let first: unknown;
  unpackr.unpackMultiple(data, (value: unknown) => {
    first = value;
    return false;
  });
  return first as T;
}

/**
 * A published message's size at the most. NATS refuses a payload over its `max_payload`
 * (1 MB unless configured); a tick of a large burst can pass that.
 */
export const MAX_MESSAGE_BYTES = 512 * 1024;

/**
 * The message encoded, or, when that passes `maxBytes`, the two messages `halve` makes
 * of it (which, delivered in order, deliver it) encoded the same way. Only a message too
 * large pays for the split; one that `halve` cannot split goes as it is.
 */
export function encodeBounded<M>(message: M, halve: (message: M) => [M, M] | undefined, maxBytes = MAX_MESSAGE_BYTES): Uint8Array[] {
  const bytes = encode(message);
  if (bytes.length <= maxBytes) return [bytes];
  const halves = halve(message);
  return halves ? halves.flatMap((half) => encodeBounded(half, halve, maxBytes)) : [bytes];
}
