import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header carrying the signature of every webhook request. */
export const SIGNATURE_HEADER = 'x-presence-signature';

/**
 * `t=<unix ms>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the app's secret key>`: the
 * time is signed with the body, so a receiver can refuse replays older than it likes.
 */
export function signWebhook(secretKey: string, body: string, timestamp: number): string {
  const mac = createHmac('sha256', secretKey).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

/** For receivers (and tests): whether `header` signs `body` with `secretKey`. */
export function verifyWebhook(secretKey: string, body: string, header: string): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!match) return false;
  const expected = Buffer.from(signWebhook(secretKey, body, Number(match[1])).split('v1=')[1]!, 'hex');
  return timingSafeEqual(expected, Buffer.from(match[2]!, 'hex'));
}
