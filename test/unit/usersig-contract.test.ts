import { createHmac } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { describe, it, expect } from 'vitest';
import { genUserSig, UserSigError, verifyUserSig } from '../../src/auth/index.js';

// SPEC.md §4: UserSigs made by Tencent's own server libraries verify here, whatever JSON
// serializer they use, and verification never lets a ticket through by accident.

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

function tencentSig(identifier: string, time = TIME, expire = DAY): string {
  const content = `TLS.identifier:${identifier}\nTLS.sdkappid:${SDK_APP_ID}\nTLS.time:${time}\nTLS.expire:${expire}\n`;
  return createHmac('sha256', SECRET).update(content).digest('base64');
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
