/**
 * Reconnect delays: exponential growth with "full jitter" (a uniform random delay between 0 and
 * the exponential ceiling), so thousands of clients dropped by one failing node do not all come
 * back in the same instant. Pure: the random source is injected, which keeps it testable.
 */

/** How reconnect delays grow. */
export interface BackoffPolicy {
  /** Ceiling of the first attempt's delay. */
  initialDelayMs: number;
  /** The ceiling never grows past this. */
  maxDelayMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffPolicy> = Object.freeze({
  initialDelayMs: 500,
  maxDelayMs: 15_000,
});

/** The largest delay allowed for `attempt` (0-based): `min(maxDelayMs, initialDelayMs * 2^attempt)`. */
export function backoffCeiling(attempt: number, policy: BackoffPolicy): number {
  // 2 ** 1100 is Infinity, which Math.min handles, so no attempt count can overflow into NaN.
  const grown = policy.initialDelayMs * 2 ** Math.max(0, attempt);
  return Math.max(0, Math.min(policy.maxDelayMs, grown));
}

/**
 * The delay before reconnect attempt `attempt` (0-based): a whole number of ms in
 * `[0, backoffCeiling(attempt))`, or 0 when the ceiling is 0.
 *
 * @param random - returns a number in `[0, 1)`, like `Math.random`.
 */
export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const ceiling = backoffCeiling(attempt, policy);
  // Clamp the random value so a sloppy source returning 1 cannot reach the ceiling.
  const fraction = Math.min(Math.max(random(), 0), 1 - Number.EPSILON);
  return Math.floor(fraction * ceiling);
}
