import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decode, decodeFirst, decodeSequence, encode, encodeSequence, ownString } from '../../src/cluster/codec.js';

const statuses = (count: number) =>
  Array.from({ length: count }, (_, i) => ({ userID: `user${i}`, statusType: 1, customStatus: `s${i}`, version: i, lastSeenAt: 0 }));

describe('codec', () => {
  it('codec - a string kept from a decoded message is copied whole, any text', () => {
    const login = { op: 'login', deviceId: 'phone-设备-ünïcode', connId: 'b21e7310-38c9-471f-a584-e7141c738fe4', gatewayId: 'gw', sigTime: 1 };
    const decoded = decode<typeof login>(encode(login));
    for (const key of ['deviceId', 'connId', 'gatewayId'] as const) expect(ownString(decoded[key])).toBe(login[key]);
  });

  it('codec - every message stands alone: a fresh reader decodes it, whatever was encoded before it', () => {
    const first = { statuses: statuses(3), app: 1 };
    const second = { app: 2, statuses: statuses(2), pushes: [['c1', [0, 1]]] };
    encode(first);
    const bytes = Buffer.from(encode(second));
    expect(new Unpackr({ useRecords: true }).unpack(bytes)).toEqual(second);
    expect(decode(bytes)).toEqual(second);
  });

  it('codec - a reader of plain maps (a node of an earlier version) decodes what is encoded now', () => {
    const message = { statuses: statuses(5), kicks: [['c7', 6206]] };
    expect(new Packr({ useRecords: false, moreTypes: false }).unpack(Buffer.from(encode(message)))).toEqual(message);
  });

  it('codec - values encoded as plain maps (stored by an earlier version) still decode', () => {
    const stored = { status: { userID: 'alice', statusType: 1 }, snapshot: { value: 'online', context: { devices: {} } } };
    expect(decode(new Packr({ useRecords: false }).pack(stored))).toEqual(stored);
  });

  it('codec - values stored as plain maps read alike in a sequence after any record was decoded, small integers included', () => {
    const maps = new Packr({ useRecords: false, moreTypes: false });
    // Plain msgpack writes 64-127 as the bytes a record reader takes for record ids 0x40-0x7f.
    const status = { userID: 'alice', statusType: 1, customStatus: '', version: 64, lastSeenAt: 0 };
    const record = { snapshot: { value: 'online', context: { version: 127, rateWindows: { q: [100, 101] } } }, outbox: [] };
    const stored = Buffer.concat([maps.pack(status), maps.pack(record)]);
    for (let version = 0; version < 3; version++) {
      // Each message decoded in between defines records of its own (nested shapes too).
      decode(encode({ app: 1, statuses: statuses(70 + version), pushes: [['c1', [{ at: version }]]] }));
      expect(decodeFirst(stored)).toEqual(status);
      expect(decodeSequence(stored)).toEqual([status, record]);
    }
  });

  it('codec - a list of same-shaped objects names its keys once, not once per object', () => {
    const list = statuses(300);
    const asMaps = new Packr({ useRecords: false, moreTypes: false }).pack(list);
    const keysPerObject = 'userIDstatusTypecustomStatusversionlastSeenAt'.length;
    expect(encode(list).length).toBeLessThan(asMaps.length - 299 * keysPerObject);
    expect(decode(encode(list))).toEqual(list);
  });

  it('codec - a message of many shapes, and one read first from a sequence, decode whole', () => {
    const shapes = Array.from({ length: 300 }, (_, i) => ({ [`k${i}`]: i, common: i }));
    expect(decode(encode(shapes))).toEqual(shapes);
    const sequence = encodeSequence({ userID: 'alice', version: 3 }, { context: { subscriptions: statuses(2) } });
    expect(decodeFirst(sequence)).toEqual({ userID: 'alice', version: 3 });
  });
});
