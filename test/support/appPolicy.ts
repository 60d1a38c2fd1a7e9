import { DEFAULT_LIMITS, type AppLimits, type AppPolicy } from '../../src/actors/index.js';

/** The policy of a premium app with the status switch on, for the actor's unit tests; each gets its own limits. */
export function policy(overrides: Partial<AppPolicy> = {}, limits: Partial<AppLimits> = {}): AppPolicy {
  return {
    edition: 'premium',
    userStatusEnabled: true,
    friendStatusAutoNotify: false,
    ...overrides,
    limits: { ...DEFAULT_LIMITS, rateLimit: { ...DEFAULT_LIMITS.rateLimit }, ...limits },
  };
}
