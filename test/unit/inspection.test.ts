import { describe, expect, it } from 'vitest';
import { UserActor } from '../../src/actors/userActor.js';
import { DEFAULT_LIMITS, UserStatusType, type AppPolicy } from '../../src/actors/types.js';
import { transitionRecord, type TransitionRecord } from '../../src/inspection/transitionRecord.js';
import { activeStates, inspectUser } from '../../src/inspection/userInspection.js';

const policy: AppPolicy = { edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify: false, limits: DEFAULT_LIMITS };

describe('inspection', () => {
  it('inspection - a transition watched after unwatched ones still names the state it left', () => {
    let wanted = false;
    const records: TransitionRecord[] = [];
    const actor = new UserActor({
      sdkAppID: 1,
      userID: 'alice',
      observer: {
        onProcessed: (_actor, processed) => {
          if (wanted) records.push(transitionRecord(processed, 1_000));
        },
      },
    });
    actor.step({ type: 'LOGIN', requestId: 'r', policy, deviceId: 'd1', connId: 'c1', gatewayId: 'g', platform: 'web' });
    expect(records).toEqual([]);
    wanted = true;
    actor.step({ type: 'LOGOUT', requestId: 'r', policy, deviceId: 'd1', connId: 'c1' });
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ event: 'LOGOUT', from: 'online', statusType: UserStatusType.UNLOGINED });
    expect(records[0]!.activeStates[0]).toBe('unlogined');
    actor.stop();
  });

  it('inspection - active states list a nested state under its parent', () => {
    expect(activeStates('online')).toEqual(['online']);
    expect(activeStates({ offline: 'retainingSubscriptions' })).toEqual(['offline', 'offline.retainingSubscriptions']);
  });

  it('inspection - the view of an actor counts the rate window inside its time only and orders deadlines', () => {
    const actor = new UserActor({ sdkAppID: 1, userID: 'bob', clock: { now: () => 10_000 } });
    actor.step({ type: 'LOGIN', requestId: 'r', policy, deviceId: 'd1', connId: 'c1', gatewayId: 'g', platform: 'ios' });
    const view = inspectUser({ ...actor.context, rateWindows: { getUserStatus: [1_000, 9_000] } }, actor.state, DEFAULT_LIMITS, 10_000, true);
    expect(view.rateWindows.find((w) => w.call === 'getUserStatus')).toMatchObject({ used: 1, limit: 20, oldestAt: 9_000 });
    expect(view.devices).toEqual([{ deviceId: 'd1', platform: 'ios', gatewayId: 'g', heartbeatDeadline: 410_000, msLeft: 400_000 }]);
    expect(view.deadlines).toEqual([{ what: 'heartbeat timeout of device d1', at: 410_000, msLeft: 400_000 }]);
    expect(view.revokedAt).toBeNull();
    actor.stop();
  });

  it('inspection - the view of a kicked user shows when its UserSigs were revoked', () => {
    const actor = new UserActor({ sdkAppID: 1, userID: 'carol', clock: { now: () => 20_000 } });
    actor.step({ type: 'KICK', requestId: 'r', policy });
    expect(inspectUser(actor.context, actor.state, DEFAULT_LIMITS, 21_000, true).revokedAt).toBe(20_000);
    actor.stop();
  });
});
