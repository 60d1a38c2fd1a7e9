import { Packr } from 'msgpackr';

// Plain maps, not records: every message stands alone, so nodes of different
// versions and restarted processes decode each other without shared structures.
const packr = new Packr({ useRecords: false, moreTypes: false });

export const encode = (value: unknown): Uint8Array => packr.pack(value);
export const decode = <T>(data: Uint8Array): T => packr.unpack(data) as T;
