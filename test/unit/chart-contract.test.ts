import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createActor, createMachine, SimulatedClock, stateIn } from 'xstate';
import { createPresenceMachine } from '../../src/actors/machine.js';
import { DEFAULT_LIMITS, type AppPolicy } from '../../src/actors/types.js';
import { UserActor } from '../../src/actors/userActor.js';
import { describeMachine, toDot, toMermaid } from '../../src/chart/index.js';
import { RateMeter } from '../../src/inspection/rateMeter.js';
import { inspectUser } from '../../src/inspection/userInspection.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('chart contract - drawing', () => {
  it('chart-contract - a transition to its own state without reenter is not drawn as a re-entry (↻), since it restarts no timer', () => {
    const machine = createMachine({
      id: 'm',
      initial: 'waiting',
      states: {
        waiting: {
          after: { 1000: 'done' },
          on: { PING: { target: 'waiting', actions: () => undefined }, RESTART: { target: 'waiting', reenter: true } },
        },
        done: {},
      },
    });
    // What xstate does: PING keeps the timer running, RESTART arms it again.
    const clock = new SimulatedClock();
    const actor = createActor(machine, { clock }).start();
    clock.increment(600);
    actor.send({ type: 'PING' });
    clock.increment(600);
    expect(actor.getSnapshot().value).toBe('done');
    const restartClock = new SimulatedClock();
    const restarted = createActor(machine, { clock: restartClock }).start();
    restartClock.increment(600);
    restarted.send({ type: 'RESTART' });
    restartClock.increment(600);
    expect(restarted.getSnapshot().value).toBe('waiting');

    const mermaid = toMermaid(describeMachine(machine));
    expect(mermaid).toContain('waiting : ↻ RESTART\n');
    expect(mermaid).toContain('waiting : PING\n');
    expect(toDot(describeMachine(machine))).toContain('<br/>PING<br align="left"/>');
  });

  it('chart-contract - a compound state targeting itself without reenter is drawn going to its initial child', () => {
    const machine = createMachine({
      id: 'm',
      initial: 'p',
      states: { p: { initial: 'c1', on: { RESET: { target: 'p' } }, states: { c1: { on: { NEXT: 'c2' } }, c2: {} } } },
    });
    const actor = createActor(machine).start();
    actor.send({ type: 'NEXT' });
    actor.send({ type: 'RESET' });
    expect(actor.getSnapshot().value).toEqual({ p: 'c1' });
    const mermaid = toMermaid(describeMachine(machine));
    expect(mermaid).toContain('p --> p_c1 : RESET\n');
    expect(mermaid).not.toContain('RESET\n  end note');
  });

  it("chart-contract - a '#' in a mermaid label is written as one entity, not as one whose ';' is escaped again", () => {
    const machine = createMachine({
      id: 'door',
      initial: 'closed',
      states: { closed: { on: { OPEN: { guard: stateIn('#door.closed'), target: 'open' } } }, open: {} },
    });
    expect(toMermaid(describeMachine(machine))).toContain('closed --> open : OPEN [in(#quot;#35;door.closed#quot;)]\n');
  });

  it('chart-contract - every [guard] the hand-written part of docs/state-chart.md names is one the chart shows', () => {
    const doc = readFileSync(`${ROOT}docs/state-chart.md`, 'utf8');
    const prose = doc.slice(0, doc.indexOf('<!-- chart:begin -->')) + doc.slice(doc.indexOf('<!-- chart:end -->'));
    const shown = new Set(describeMachine(createPresenceMachine()).states.flatMap((s) => s.transitions.map((t) => t.guard)));
    shown.add('else');
    const named = [...prose.matchAll(/`\[([^\]`]+)\]`/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(0);
    expect(named.filter((guard) => !shown.has(guard))).toEqual([]);
  });
});

const policy: AppPolicy = { edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify: false, limits: DEFAULT_LIMITS };

describe('chart contract - inspection', () => {
  it('chart-contract - the subscriptions are listed in the order they are evicted, even when the clock went back between two subscribes', () => {
    let now = 100_000;
    const actor = new UserActor({ sdkAppID: 1, userID: 'dora', clock: { now: () => now } });
    const cap2 = { ...policy, limits: { ...DEFAULT_LIMITS, subscriptionCap: 2 } };
    actor.step({ type: 'LOGIN', requestId: 'r', policy: cap2, deviceId: 'd', connId: 'c', gatewayId: 'g', platform: 'web' });
    actor.step({ type: 'SUBSCRIBE', requestId: 'r', policy: cap2, deviceId: 'd', connId: 'c', userIDs: ['first'] });
    // The actor moved to a node whose clock is a little behind.
    now -= 50;
    actor.step({ type: 'SUBSCRIBE', requestId: 'r', policy: cap2, deviceId: 'd', connId: 'c', userIDs: ['second'] });

    const view = inspectUser(actor.context, actor.state, cap2.limits, now, true);
    const nextEvicted = view.subscriptions[0]!.userID;
    const result = actor.step({ type: 'SUBSCRIBE', requestId: 'r', policy: cap2, deviceId: 'd', connId: 'c', userIDs: ['third'] });
    expect(result.reply).toMatchObject({ ok: true, evicted: [nextEvicted] });
    expect(view.subscriptions.map((s) => s.userID)).toEqual(['first', 'second']);
    actor.stop();
  });

  it('chart-contract - the retention deadline shown is the one the actor arms, and goes once it fired', () => {
    const clock = new SimulatedClock();
    clock.set(1_000);
    const actor = new UserActor({ sdkAppID: 1, userID: 'erin', clock });
    actor.step({ type: 'LOGIN', requestId: 'r', policy, deviceId: 'd', connId: 'c', gatewayId: 'g', platform: 'web' });
    actor.step({ type: 'SUBSCRIBE', requestId: 'r', policy, deviceId: 'd', connId: 'c', userIDs: ['x'] });
    actor.step({ type: 'DISCONNECT', policy, deviceId: 'd', connId: 'c' });
    const view = inspectUser(actor.context, actor.state, DEFAULT_LIMITS, 1_000, true);
    expect(view.activeStates).toEqual(['offline', 'offline.retainingSubscriptions']);
    expect(view.deadlines).toEqual([{ what: 'subscription retention ends', at: 601_000, msLeft: 600_000 }]);
    clock.increment(600_000);
    const after = inspectUser(actor.context, actor.state, DEFAULT_LIMITS, clock.now(), true);
    expect(after.activeStates).toEqual(['offline', 'offline.idle']);
    expect(after.deadlines).toEqual([]);
    expect(after.subscriptions).toEqual([]);
    actor.stop();
  });

  it('chart-contract - the rate windows count only the calls the actor counted (a query of oneself is free)', () => {
    const actor = new UserActor({ sdkAppID: 1, userID: 'finn', clock: { now: () => 5_000 } });
    actor.step({ type: 'LOGIN', requestId: 'r', policy, deviceId: 'd', connId: 'c', gatewayId: 'g', platform: 'web' });
    actor.step({ type: 'QUERY', requestId: 'r', policy, deviceId: 'd', connId: 'c', userIDs: ['finn'] });
    actor.step({ type: 'QUERY', requestId: 'r', policy, deviceId: 'd', connId: 'c', userIDs: ['gail'] });
    actor.step({ type: 'UNSUBSCRIBE', requestId: 'r', policy, deviceId: 'd', connId: 'c', userIDs: [] });
    const windows = inspectUser(actor.context, actor.state, DEFAULT_LIMITS, 5_000, true).rateWindows;
    expect(windows.map((w) => [w.call, w.used, w.oldestAt])).toEqual([
      ['getUserStatus', 1, 5_000],
      ['subscribeUserStatus', 0, null],
      ['unsubscribeUserStatus', 1, 5_000],
    ]);
    actor.stop();
  });

  it('chart-contract - the rate meter averages the last whole seconds, the current one left out', () => {
    let now = 10_500;
    const meter = new RateMeter(() => now, 5);
    for (const at of [4_999, 5_000, 9_999, 10_000, 10_999]) {
      now = at;
      meter.mark(2);
    }
    now = 10_999;
    // 5_000 and 9_999 fall in seconds 5..9; 4_999 is too old and 10_xxx is the current second.
    expect(meter.perSecond()).toBe(4 / 5);
    now = 15_999;
    expect(meter.perSecond()).toBe(4 / 5);
    now = 16_000;
    expect(meter.perSecond()).toBe(0);
  });
});
