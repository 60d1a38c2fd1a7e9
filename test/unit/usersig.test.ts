import { createHmac } from 'node:crypto';
import { deflateSync, inflateSync } from 'node:zlib';
import { describe, it, expect } from 'vitest';
import {
  decodeUserSig,
  genUserSig,
  UserSigError,
  verifyUserSig,
} from '../../src/auth/index.js';

const SECRET = '5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e';
const SDK_APP_ID = 1400000000;
const USER = 'xiaojun';
const TIME = 1700000000;
const NOW_MS = TIME * 1000;
const DAY = 86400;

function tencentEncode(json: string): string {
  return deflateSync(Buffer.from(json, 'utf8'))
    .toString('base64')
    .replace(/\+/g, '*')
    .replace(/\//g, '-')
    .replace(/=/g, '_');
}

function tencentDecode(userSig: string): Record<string, unknown> {
  const base64 = userSig.replace(/\*/g, '+').replace(/-/g, '/').replace(/_/g, '=');
  return JSON.parse(inflateSync(Buffer.from(base64, 'base64')).toString('utf8')) as Record<string, unknown>;
}

interface HandTicket {
  identifier: string;
  sdkappid: number;
  time: number;
  expire: number;
  userbuf?: string;
}

function handBuiltUserSig(secret: string, t: HandTicket): string {
  let content = `TLS.identifier:${t.identifier}\nTLS.sdkappid:${t.sdkappid}\nTLS.time:${t.time}\nTLS.expire:${t.expire}\n`;
  if (t.userbuf !== undefined) content += `TLS.userbuf:${t.userbuf}\n`;
  const sig = createHmac('sha256', secret).update(content).digest('base64');
  const userbufJson = t.userbuf === undefined ? '' : `,"TLS.userbuf":${JSON.stringify(t.userbuf)}`;
  const json =
    `{"TLS.ver":"2.0","TLS.identifier":${JSON.stringify(t.identifier)},"TLS.sdkappid":${t.sdkappid},` +
    `"TLS.expire":${t.expire},"TLS.time":${t.time}${userbufJson},"TLS.sig":"${sig}"}`;
  return tencentEncode(json);
}

function sigAt(nowMs: number, expire = DAY, userID = USER): string {
  return genUserSig({ sdkAppID: SDK_APP_ID, secretKey: SECRET, userID, expire, now: nowMs });
}

function verifyAt(userSig: string, nowMs: number, extra: Partial<Parameters<typeof verifyUserSig>[0]> = {}) {
  return verifyUserSig({ userSig, sdkAppID: SDK_APP_ID, userID: USER, secretKey: SECRET, now: nowMs, ...extra });
}

function codeOf(fn: () => unknown): number | string {
  try {
    fn();
  } catch (err) {
    if (err instanceof UserSigError) return err.code;
    return `not a UserSigError: ${String(err)}`;
  }
  return 'did not throw';
}

describe('usersig', () => {
  it('usersig - produces the Tencent check value for TLS.sig', () => {
    const doc = tencentDecode(sigAt(NOW_MS));
    expect(doc['TLS.sig']).toBe('SNF4FmVCPucoXsBOpbVF3fFCf57JPm0ezZ1jeVILlVc=');
    expect(Object.keys(doc)).toEqual([
      'TLS.ver',
      'TLS.identifier',
      'TLS.sdkappid',
      'TLS.expire',
      'TLS.time',
      'TLS.sig',
    ]);
    expect(doc).toMatchObject({
      'TLS.ver': '2.0',
      'TLS.identifier': USER,
      'TLS.sdkappid': SDK_APP_ID,
      'TLS.expire': DAY,
      'TLS.time': TIME,
    });
  });

  it('usersig - emits only the UserSig base64 alphabet', () => {
    expect(sigAt(NOW_MS)).toMatch(/^[A-Za-z0-9*-]+_{0,2}$/);
  });

  it('usersig - floors now to whole seconds and defaults expire to 86400', () => {
    const ticket = decodeUserSig(genUserSig({ sdkAppID: SDK_APP_ID, secretKey: SECRET, userID: USER, now: NOW_MS + 999 }));
    expect(ticket).toEqual({ identifier: USER, sdkAppID: SDK_APP_ID, time: TIME, expire: DAY });
  });

  it('usersig - round-trips gen to verify', () => {
    const ticket = verifyAt(sigAt(NOW_MS, 7 * DAY), NOW_MS + 1000);
    expect(ticket).toEqual({ identifier: USER, sdkAppID: SDK_APP_ID, time: TIME, expire: 7 * DAY });
  });

  it('usersig - round-trips with the real clock when now is omitted', () => {
    const userSig = genUserSig({ sdkAppID: SDK_APP_ID, secretKey: SECRET, userID: USER });
    expect(verifyUserSig({ userSig, sdkAppID: SDK_APP_ID, userID: USER, secretKey: SECRET }).identifier).toBe(USER);
  });

  it('usersig - verifies a ticket built by hand the way Tencent libraries build it', () => {
    const userSig = handBuiltUserSig(SECRET, { identifier: USER, sdkappid: SDK_APP_ID, time: TIME, expire: DAY });
    expect(userSig).toBe(sigAt(NOW_MS));
    expect(verifyAt(userSig, NOW_MS)).toEqual({ identifier: USER, sdkAppID: SDK_APP_ID, time: TIME, expire: DAY });
  });

  it('usersig - verifies a hand-built ticket that signs TLS.userbuf', () => {
    const userbuf = Buffer.from('room=42;role=admin').toString('base64');
    const userSig = handBuiltUserSig(SECRET, { identifier: USER, sdkappid: SDK_APP_ID, time: TIME, expire: DAY, userbuf });
    expect(verifyAt(userSig, NOW_MS)).toEqual({
      identifier: USER,
      sdkAppID: SDK_APP_ID,
      time: TIME,
      expire: DAY,
      userbuf,
    });
  });

  it('usersig - rejects a ticket whose TLS.userbuf was changed after signing (70003)', () => {
    const doc = tencentDecode(
      handBuiltUserSig(SECRET, { identifier: USER, sdkappid: SDK_APP_ID, time: TIME, expire: DAY, userbuf: 'cm9sZT11c2Vy' }),
    );
    doc['TLS.userbuf'] = Buffer.from('role=admin').toString('base64');
    expect(codeOf(() => verifyAt(tencentEncode(JSON.stringify(doc)), NOW_MS))).toBe(70003);
  });

  it('usersig - rejects a ticket whose signed TLS.userbuf was removed (70003)', () => {
    const doc = tencentDecode(
      handBuiltUserSig(SECRET, { identifier: USER, sdkappid: SDK_APP_ID, time: TIME, expire: DAY, userbuf: 'cm9sZT11c2Vy' }),
    );
    delete doc['TLS.userbuf'];
    expect(codeOf(() => verifyAt(tencentEncode(JSON.stringify(doc)), NOW_MS))).toBe(70003);
  });

  it('usersig - signs unicode identifiers as UTF-8', () => {
    const identifier = '小军-Ωμέγα-😀';
    const handBuilt = handBuiltUserSig(SECRET, { identifier, sdkappid: SDK_APP_ID, time: TIME, expire: DAY });
    expect(sigAt(NOW_MS, DAY, identifier)).toBe(handBuilt);
    expect(decodeUserSig(handBuilt).identifier).toBe(identifier);
    expect(verifyAt(handBuilt, NOW_MS, { userID: identifier }).identifier).toBe(identifier);
  });

  it('usersig - rejects a ticket signed with another secret key (70003)', () => {
    const userSig = genUserSig({ sdkAppID: SDK_APP_ID, secretKey: `${SECRET}x`, userID: USER, now: NOW_MS });
    expect(codeOf(() => verifyAt(userSig, NOW_MS))).toBe(70003);
  });

  it('usersig - rejects a ticket whose TLS.sig was tampered with (70003)', () => {
    const doc = tencentDecode(sigAt(NOW_MS));
    const sig = doc['TLS.sig'] as string;
    doc['TLS.sig'] = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
    expect(codeOf(() => verifyAt(tencentEncode(JSON.stringify(doc)), NOW_MS))).toBe(70003);
  });

  it('usersig - rejects a ticket whose TLS.sig has a different length (70003)', () => {
    const doc = tencentDecode(sigAt(NOW_MS));
    doc['TLS.sig'] = (doc['TLS.sig'] as string).slice(0, -1);
    expect(codeOf(() => verifyAt(tencentEncode(JSON.stringify(doc)), NOW_MS))).toBe(70003);
  });

  it('usersig - rejects a ticket whose signed fields were changed (70003)', () => {
    const doc = tencentDecode(sigAt(NOW_MS));
    doc['TLS.expire'] = 2 * DAY;
    expect(codeOf(() => verifyAt(tencentEncode(JSON.stringify(doc)), NOW_MS))).toBe(70003);
  });

  it('usersig - rejects an empty string (70003)', () => {
    expect(codeOf(() => decodeUserSig(''))).toBe(70003);
  });

  it('usersig - rejects characters outside the UserSig alphabet (70003)', () => {
    expect(codeOf(() => decodeUserSig('!!!'))).toBe(70003);
    for (const input of ['eJ+r', 'eJ/r', 'eJw=', 'eJw r', 'eJ_w', '\u00e9Jw_']) {
      expect(codeOf(() => decodeUserSig(input)), input).toBe(70003);
    }
  });

  it('usersig - rejects non-string input (70003)', () => {
    for (const input of [undefined, null, 42, {}, ['x']]) {
      expect(codeOf(() => decodeUserSig(input as unknown as string))).toBe(70003);
    }
  });

  it('usersig - rejects valid base64 that is not zlib data (70003)', () => {
    const notZlib = Buffer.from('hello, this is not deflated').toString('base64').replace(/=/g, '_');
    expect(codeOf(() => decodeUserSig(notZlib))).toBe(70003);
  });

  it('usersig - rejects zlib data that is not JSON (70003)', () => {
    expect(codeOf(() => decodeUserSig(tencentEncode('TLS.ver=2.0')))).toBe(70003);
  });

  it('usersig - rejects JSON that is not an object (70003)', () => {
    for (const json of ['null', '[]', '"2.0"', '42']) {
      expect(codeOf(() => decodeUserSig(tencentEncode(json)))).toBe(70003);
    }
  });

  it('usersig - rejects JSON with a missing field (70003)', () => {
    const full = tencentDecode(sigAt(NOW_MS));
    for (const key of Object.keys(full)) {
      const doc = { ...full };
      delete doc[key];
      expect(codeOf(() => decodeUserSig(tencentEncode(JSON.stringify(doc)))), key).toBe(70003);
    }
  });

  it('usersig - rejects JSON with an ill-typed field (70003)', () => {
    const full = tencentDecode(sigAt(NOW_MS));
    const bad: Record<string, unknown[]> = {
      'TLS.identifier': [42, '', null],
      'TLS.sdkappid': [String(SDK_APP_ID), -1, 1.5, null],
      'TLS.time': [String(TIME), -1, 1.5, 2 ** 60],
      'TLS.expire': [String(DAY), -1, 0.5],
      'TLS.sig': [42, ''],
      'TLS.userbuf': [42, null, ['x']],
    };
    for (const [key, values] of Object.entries(bad)) {
      for (const value of values) {
        const json = JSON.stringify({ ...full, [key]: value });
        expect(codeOf(() => decodeUserSig(tencentEncode(json))), `${key}=${JSON.stringify(value)}`).toBe(70003);
      }
    }
  });

  it('usersig - rejects TLS.ver other than "2.0" (70003)', () => {
    const doc = { ...tencentDecode(sigAt(NOW_MS)), 'TLS.ver': '1.0' };
    expect(codeOf(() => decodeUserSig(tencentEncode(JSON.stringify(doc))))).toBe(70003);
  });

  it('usersig - rejects input longer than 4096 characters (70003)', () => {
    expect(codeOf(() => decodeUserSig('A'.repeat(4097)))).toBe(70003);
    expect(codeOf(() => decodeUserSig(sigAt(NOW_MS) + 'A'.repeat(4096)))).toBe(70003);
  });

  it('usersig - rejects a small ticket that inflates beyond 16 KiB (70003)', () => {
    const doc = { ...tencentDecode(sigAt(NOW_MS)), pad: ' '.repeat(17 * 1024) };
    const bomb = tencentEncode(JSON.stringify(doc));
    expect(bomb.length).toBeLessThan(4096);
    expect(codeOf(() => decodeUserSig(bomb))).toBe(70003);
  });

  it('usersig - throws only UserSigError 70003 for every truncation of a valid ticket', () => {
    const userSig = sigAt(NOW_MS);
    for (let end = 0; end < userSig.length; end++) {
      const code = codeOf(() => decodeUserSig(userSig.slice(0, end)));
      expect([70003, 'did not throw'], `prefix of ${end}`).toContain(code);
    }
  });

  it('usersig - decode returns the fields without checking the signature', () => {
    const doc = { ...tencentDecode(sigAt(NOW_MS)), 'TLS.sig': 'bm90IGEgc2ln' };
    expect(decodeUserSig(tencentEncode(JSON.stringify(doc)))).toEqual({
      identifier: USER,
      sdkAppID: SDK_APP_ID,
      time: TIME,
      expire: DAY,
    });
  });

  it('usersig - rejects a ticket for another userID (70013)', () => {
    expect(codeOf(() => verifyAt(sigAt(NOW_MS), NOW_MS, { userID: 'xiaohong' }))).toBe(70013);
  });

  it('usersig - rejects a ticket for another SDKAppID (70014)', () => {
    expect(codeOf(() => verifyAt(sigAt(NOW_MS), NOW_MS, { sdkAppID: SDK_APP_ID + 1 }))).toBe(70014);
  });

  it('usersig - checks SDKAppID before userID before the signature', () => {
    const userSig = genUserSig({ sdkAppID: SDK_APP_ID, secretKey: 'other', userID: USER, now: NOW_MS });
    expect(codeOf(() => verifyAt(userSig, NOW_MS, { sdkAppID: 1, userID: 'other' }))).toBe(70014);
    expect(codeOf(() => verifyAt(userSig, NOW_MS, { userID: 'other' }))).toBe(70013);
    expect(codeOf(() => verifyAt(userSig, NOW_MS))).toBe(70003);
  });

  it('usersig - accepts a ticket up to the last millisecond of its validity', () => {
    expect(verifyAt(sigAt(NOW_MS), NOW_MS + DAY * 1000).time).toBe(TIME);
  });

  it('usersig - rejects an expired ticket (70001)', () => {
    expect(codeOf(() => verifyAt(sigAt(NOW_MS), NOW_MS + DAY * 1000 + 1))).toBe(70001);
  });

  it('usersig - says when the ticket expired and what to do', () => {
    expect(() => verifyAt(sigAt(NOW_MS), NOW_MS + 2 * DAY * 1000)).toThrow(
      /expired at 2023-11-15T22:13:20\.000Z; issue a new one/,
    );
  });

  it('usersig - accepts a ticket issued within the clock skew allowance', () => {
    expect(verifyAt(sigAt(NOW_MS + 300_000), NOW_MS).time).toBe(TIME + 300);
  });

  it('usersig - rejects a ticket issued further in the future than the clock skew (70003)', () => {
    expect(codeOf(() => verifyAt(sigAt(NOW_MS + 301_000), NOW_MS))).toBe(70003);
    expect(codeOf(() => verifyAt(sigAt(NOW_MS + 11_000), NOW_MS, { maxClockSkewSeconds: 10 }))).toBe(70003);
  });

  it('usersig - rejects a validity longer than the maximum (70003)', () => {
    expect(verifyAt(sigAt(NOW_MS, 180 * DAY), NOW_MS).expire).toBe(180 * DAY);
    expect(codeOf(() => verifyAt(sigAt(NOW_MS, 180 * DAY + 1), NOW_MS))).toBe(70003);
    expect(codeOf(() => verifyAt(sigAt(NOW_MS, 2 * DAY), NOW_MS, { maxValiditySeconds: DAY }))).toBe(70003);
  });

  it('usersig - rejects a ticket issued in or before the revocation second (70052)', () => {
    const userSig = sigAt(NOW_MS);
    expect(codeOf(() => verifyAt(userSig, NOW_MS + 5000, { revokedAtMs: NOW_MS + 1000 }))).toBe(70052);
    expect(codeOf(() => verifyAt(userSig, NOW_MS + 5000, { revokedAtMs: NOW_MS }))).toBe(70052);
    expect(codeOf(() => verifyAt(userSig, NOW_MS + 5000, { revokedAtMs: NOW_MS + 999 }))).toBe(70052);
  });

  it('usersig - accepts a ticket issued the second after the revocation', () => {
    const revokedAtMs = NOW_MS + 999;
    const userSig = sigAt(NOW_MS + 1000);
    expect(verifyAt(userSig, NOW_MS + 5000, { revokedAtMs }).time).toBe(TIME + 1);
  });

  it('usersig - reports expiry before revocation', () => {
    expect(codeOf(() => verifyAt(sigAt(NOW_MS), NOW_MS + 2 * DAY * 1000, { revokedAtMs: NOW_MS }))).toBe(70001);
  });

  it('usersig - UserSigError carries its code, name and cause', () => {
    let caught: unknown;
    try {
      decodeUserSig(tencentEncode('not json'));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UserSigError);
    expect(caught).toBeInstanceOf(Error);
    const err = caught as UserSigError;
    expect(err.name).toBe('UserSigError');
    expect(err.code).toBe(70003);
    expect(err.message).toMatch(/^UserSig is malformed: .+; pass the UserSig exactly as issued$/);
    expect(err.cause).toBeInstanceOf(SyntaxError);
  });

  it('usersig - verify refuses an empty secret key', () => {
    expect(() => verifyUserSig({ userSig: sigAt(NOW_MS), sdkAppID: SDK_APP_ID, userID: USER, secretKey: '' })).toThrow(
      TypeError,
    );
  });

  it('usersig - gen refuses invalid options', () => {
    const base = { sdkAppID: SDK_APP_ID, secretKey: SECRET, userID: USER, now: NOW_MS };
    expect(() => genUserSig({ ...base, secretKey: '' })).toThrow(TypeError);
    expect(() => genUserSig({ ...base, userID: '' })).toThrow(TypeError);
    expect(() => genUserSig({ ...base, sdkAppID: 0 })).toThrow(RangeError);
    expect(() => genUserSig({ ...base, expire: 0 })).toThrow(RangeError);
    expect(() => genUserSig({ ...base, expire: 1.5 })).toThrow(RangeError);
    expect(() => genUserSig({ ...base, now: Number.NaN })).toThrow(RangeError);
  });
});

// SPEC.md §4 (the contract): UserSigs made by Tencent's own server libraries verify here, whatever JSON
// serializer they use, and verification never lets a ticket through by accident.

function tencentSig(identifier: string, time = TIME, expire = DAY): string {
  const content = `TLS.identifier:${identifier}\nTLS.sdkappid:${SDK_APP_ID}\nTLS.time:${time}\nTLS.expire:${expire}\n`;
  return createHmac('sha256', SECRET).update(content).digest('base64');
}

describe('usersig contract', () => {
  it('usersig contract - verifies the JSON of Python json.dumps (spaces, \\u escapes)', () => {
    const identifier = '小军';
    const escaped = identifier.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    const json =
      `{"TLS.ver": "2.0", "TLS.identifier": "${escaped}", "TLS.sdkappid": ${SDK_APP_ID}, ` +
      `"TLS.expire": ${DAY}, "TLS.time": ${TIME}, "TLS.sig": "${tencentSig(identifier)}"}`;
    expect(verifyAt(tencentEncode(json), NOW_MS, { userID: identifier }).identifier).toBe(identifier);
  });

  it('usersig contract - verifies the JSON of PHP json_encode (escaped slashes) and Go (sorted keys)', () => {
    const sig = tencentSig(USER);
    const php =
      `{"TLS.ver":"2.0","TLS.identifier":"${USER}","TLS.sdkappid":${SDK_APP_ID},"TLS.expire":${DAY},` +
      `"TLS.time":${TIME},"TLS.sig":"${sig.replace(/\//g, '\\/')}"}`;
    const go =
      `{"TLS.expire":${DAY},"TLS.identifier":"${USER}","TLS.sdkappid":${SDK_APP_ID},"TLS.sig":"${sig}",` +
      `"TLS.time":${TIME},"TLS.ver":"2.0"}`;
    for (const json of [php, go]) expect(verifyAt(tencentEncode(json), NOW_MS).time).toBe(TIME);
  });

  it('usersig contract - verifies a UserSig whose padding was stripped', () => {
    const userSig = genUserSig({ sdkAppID: SDK_APP_ID, secretKey: SECRET, userID: USER, now: NOW_MS });
    expect(verifyAt(userSig.replace(/_+$/, ''), NOW_MS).time).toBe(TIME);
  });

  it('usersig contract - refuses a clock that is not a number instead of accepting any ticket', () => {
    // Issued in 1970 and long expired: a NaN anywhere in the time checks must not let it through.
    const ancient = genUserSig({ sdkAppID: SDK_APP_ID, secretKey: SECRET, userID: USER, now: 1000 });
    expect(codeOf(() => verifyAt(ancient, NOW_MS))).toBe(70001);
    for (const extra of [
      { now: Number.NaN },
      { now: Number.POSITIVE_INFINITY },
      { maxClockSkewSeconds: Number.NaN },
      { maxValiditySeconds: Number.NaN },
      { revokedAtMs: Number.NaN },
    ]) {
      expect(() => verifyAt(ancient, NOW_MS, extra), JSON.stringify(extra)).toThrow(RangeError);
    }
  });

  it('usersig contract - still accepts a real clock and limits of zero', () => {
    const fresh = genUserSig({ sdkAppID: SDK_APP_ID, secretKey: SECRET, userID: USER, now: NOW_MS });
    expect(verifyAt(fresh, NOW_MS, { maxClockSkewSeconds: 0, revokedAtMs: 0 }).time).toBe(TIME);
    expect(codeOf(() => verifyAt(fresh, NOW_MS, { maxValiditySeconds: 0 }))).toBe(70003);
  });
});
