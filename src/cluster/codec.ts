import { Packr } from 'msgpackr';

// Plain maps, not records: every message stands alone, so nodes of different
// versions and restarted processes decode each other without shared structures.
const packr = new Packr({ useRecords: false, moreTypes: false });

export const encode = (value: unknown): Uint8Array => packr.pack(value);
export const decode = <T>(data: Uint8Array): T => packr.unpack(data) as T;

/** Encodes values back to back in one buffer, so that a reader may decode the first alone. */
export function encodeSequence(...values: unknown[]): Uint8Array {
  const parts = values.map((value) => packr.pack(value));
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

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
