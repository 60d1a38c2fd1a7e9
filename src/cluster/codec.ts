import { Packr } from 'msgpackr';

// Plain maps, not records: every message stands alone, so nodes of different
// versions and restarted processes decode each other without shared structures.
const packr = new Packr({ useRecords: false, moreTypes: false });

export const encode = (value: unknown): Uint8Array => packr.pack(value);
export const decode = <T>(data: Uint8Array): T => packr.unpack(data) as T;

/** Encodes values back to back in one buffer, so that a reader may decode the first alone. */
export const encodeSequence = (...values: unknown[]): Uint8Array => Buffer.concat(values.map((value) => packr.pack(value)));

/** Every value of a buffer written by `encodeSequence` (one, for a buffer written by `encode`). */
export const decodeSequence = (data: Uint8Array): unknown[] => packr.unpackMultiple(data) as unknown[];

/** The first value of such a buffer, without decoding the rest. */
export function decodeFirst<T>(data: Uint8Array): T {
  let first: unknown;
  packr.unpackMultiple(data, (value: unknown) => {
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
