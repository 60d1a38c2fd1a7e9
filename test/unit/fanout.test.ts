import { describe, expect, it, vi } from 'vitest';
import type { Device, UserStatus } from '../../src/actors/types.js';
import { decode, encode, encodeBounded } from '../../src/cluster/codec.js';
import type { GatewayDelivery, StatusChanges } from '../../src/cluster/commands.js';
import { DeliveryBatcher } from '../../src/cluster/delivery.js';
import { FanOut } from '../../src/cluster/fanout.js';
import { halvesOf, StatusBatcher } from '../../src/cluster/statusBatcher.js';
import { subjects, userKey } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';

const APP = 1400000001;
const OTHER_APP = 1400000002;

const status = (userID: string, version: number): UserStatus => ({ userID, statusType: 1, customStatus: `v${version}`, version, lastSeenAt: 0 });

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
/** Waits for the owner's flush (and the transport's microtasks after it), then for the flush the delivery batcher scheduled in them. */
const settled = async () => {
  await nextTurn();
  await nextTurn();
};

/**
 * A node's fan-out over the embedded transport, fed by an owner's status batcher on the
 * same transport; each watcher has one device, connection `c-<watcher key>` on gateway `gw`.
 */
function node() {
  const transport = new EmbeddedTransport();
  const subscribe = vi.spyOn(transport, 'subscribe');
  const delivery = new DeliveryBatcher(transport);
  const pushed: string[] = [];
  delivery.connectLocal('gw', (message: GatewayDelivery) => {
    for (const [connId, indexes] of message.pushes ?? []) {
      for (const i of indexes) pushed.push(`${connId}<-${message.statuses![i]!.userID}@${message.statuses![i]!.version}`);
    }
  });
  const device = (key: string): Device => ({ connId: `c-${key}`, gatewayId: 'gw', platform: 'web', heartbeatDeadline: 0 });
  const fanout = new FanOut(transport, delivery, (key) => [device(key)]);
  const owner = new StatusBatcher(transport);
  const publish = (app: number, change: UserStatus) => owner.announce(app, change);
  const follow = (app: number, watcher: string, previous: string[], next: string[]) =>
    fanout.follow(userKey(app, watcher), app, new Set(previous), new Set(next));
  return { transport, subscribe, fanout, pushed, publish, follow };
}

describe('fanout', () => {
  // Which copy of the string comes back is not observable from JavaScript (the benchmark's heap per
  // online user measures that); this checks that sharing never changes which user a list names.
  it('fanout - a subscribe call\'s targets shared with the fan-out name the same users, watched here or not', () => {
    const { fanout, follow } = node();
    const held = ['al', 'ice'].join('');
    follow(APP, 'w1', [], [held]);
    const first = fanout.shareTargets(APP, [['a', 'lice'].join(''), 'bob']);
    expect(first.userIDs).toEqual(['alice', 'bob']);
    expect(fanout.shareTargets(OTHER_APP, ['alice']).userIDs).toEqual(['alice']);
    follow(APP, 'w2', [], ['bob', 'carol']);
    expect(fanout.shareTargets(APP, ['bob', 'carol', 'dave']).userIDs).toEqual(['bob', 'carol', 'dave']);
    follow(APP, 'w1', [held], []);
    expect(fanout.shareTargets(APP, ['alice']).userIDs).toEqual(['alice']);
    first.release();
  });

  it('fanout - targets of subscribe calls in flight are held only until the last of those calls is released', () => {
    const { fanout, follow } = node();
    follow(APP, 'w1', [], ['alice']);
    const one = fanout.shareTargets(APP, ['alice', 'bob', 'carol']);
    const two = fanout.shareTargets(APP, ['bob', 'dave']);
    const other = fanout.shareTargets(OTHER_APP, ['bob']);
    // alice is watched here: her copy is the watched user's, and nothing is held for her.
    expect(fanout.arrivingCount).toBe(4);
    one.release();
    expect(fanout.arrivingCount).toBe(3);
    one.release(); // a second release of the same call changes nothing
    expect(fanout.arrivingCount).toBe(3);
    two.release();
    other.release();
    expect(fanout.arrivingCount).toBe(0);
    expect(two.userIDs).toEqual(['bob', 'dave']);
  });

  it('fanout - one transport subscription per app, however many users its watchers here follow', async () => {
    const { subscribe, fanout, pushed, publish, follow } = node();
    follow(APP, 'w1', [], ['a', 'b', 'c']);
    follow(APP, 'w2', [], ['a', 'd']);
    expect(subscribe).toHaveBeenCalledTimes(1);
    expect(subscribe.mock.calls[0]![0]).toBe(subjects.statusChanges(APP));
    expect(fanout.interestCount).toBe(4);
    publish(APP, status('a', 1));
    publish(APP, status('d', 1));
    await settled();
    expect(pushed.sort()).toEqual([`c-${APP}.w1<-a@1`, `c-${APP}.w2<-a@1`, `c-${APP}.w2<-d@1`]);
  });

  it('fanout - a change of a user nobody here follows reaches no one', async () => {
    const { pushed, publish, follow } = node();
    follow(APP, 'w1', [], ['a']);
    publish(APP, status('stranger', 1));
    await settled();
    expect(pushed).toEqual([]);
  });

  it('fanout - an older or repeated version of a change is not delivered again', async () => {
    const { pushed, publish, follow } = node();
    follow(APP, 'w1', [], ['a']);
    publish(APP, status('a', 2));
    publish(APP, status('a', 2));
    publish(APP, status('a', 1));
    publish(APP, status('a', 3));
    await settled();
    expect(pushed).toEqual([`c-${APP}.w1<-a@2`, `c-${APP}.w1<-a@3`]);
  });

  it('fanout - when the last watcher of an app stops following, its subscription ends, and the next follow makes a new one', async () => {
    const { subscribe, fanout, pushed, publish, follow } = node();
    follow(APP, 'w1', [], ['a', 'b']);
    follow(APP, 'w2', [], ['a']);
    follow(APP, 'w1', ['a', 'b'], ['b']);
    publish(APP, status('a', 1));
    await settled();
    expect(pushed).toEqual([`c-${APP}.w2<-a@1`]);
    follow(APP, 'w1', ['b'], []);
    follow(APP, 'w2', ['a'], []);
    expect(fanout.interestCount).toBe(0);
    publish(APP, status('a', 2));
    await settled();
    expect(pushed).toEqual([`c-${APP}.w2<-a@1`]);
    follow(APP, 'w3', [], ['a']);
    expect(subscribe).toHaveBeenCalledTimes(2);
    publish(APP, status('a', 3));
    await settled();
    expect(pushed).toEqual([`c-${APP}.w2<-a@1`, `c-${APP}.w3<-a@3`]);
  });

  it('fanout - the same userID in another app is another user', async () => {
    const { subscribe, pushed, publish, follow } = node();
    follow(APP, 'w1', [], ['a']);
    follow(OTHER_APP, 'w9', [], ['a']);
    expect(subscribe).toHaveBeenCalledTimes(2);
    publish(OTHER_APP, status('a', 1));
    await settled();
    expect(pushed).toEqual([`c-${OTHER_APP}.w9<-a@1`]);
  });

  it('fanout - the changes an owner announces in one tick go out as one message per app, in order', async () => {
    const transport = new EmbeddedTransport();
    const heard = new Map<number, StatusChanges[]>();
    for (const app of [APP, OTHER_APP]) {
      heard.set(app, []);
      transport.subscribe(subjects.statusChanges(app), (data) => heard.get(app)!.push(decode<StatusChanges>(data)));
    }
    const owner = new StatusBatcher(transport);
    owner.announce(APP, status('a', 1));
    owner.announce(OTHER_APP, status('z', 1));
    owner.announce(APP, status('b', 1));
    owner.announce(APP, status('a', 2));
    await settled();
    expect(heard.get(APP)!.map((m) => m.statuses.map((s) => `${s.userID}@${s.version}`))).toEqual([['a@1', 'b@1', 'a@2']]);
    expect(heard.get(OTHER_APP)!.map((m) => m.statuses.length)).toEqual([1]);
    owner.announce(APP, status('b', 2));
    owner.flush();
    // The embedded transport hands a message over in a microtask: no turn has ended yet.
    await Promise.resolve();
    expect(heard.get(APP)!.map((m) => m.statuses.length)).toEqual([3, 1]);
  });

  it('fanout - a tick\'s changes too large for one message go out as several, in order', () => {
    const statuses = Array.from({ length: 40 }, (_, i) => status('a', i + 1));
    const whole = encode({ app: APP, statuses, at: 1 }).length;
    const messages = encodeBounded({ app: APP, statuses, at: 1 }, halvesOf, Math.floor(whole / 6)).map((bytes) => decode<StatusChanges>(bytes));
    expect(messages.length).toBeGreaterThan(5);
    for (const message of messages) expect(message).toMatchObject({ app: APP, at: 1 });
    expect(messages.flatMap((m) => m.statuses.map((s) => s.version))).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  });

  it('fanout - a malformed entry in a batch is skipped, the rest is delivered', async () => {
    const { transport, pushed, follow } = node();
    follow(APP, 'w1', [], ['a', 'b']);
    transport.publish(subjects.statusChanges(APP), encode({ app: APP, at: Date.now(), statuses: [status('a', 1), null, { userID: 'b' }, status('b', 1)] }));
    transport.publish(subjects.statusChanges(APP), encode({ app: APP, statuses: 'nonsense' }));
    await settled();
    expect(pushed).toEqual([`c-${APP}.w1<-a@1`, `c-${APP}.w1<-b@1`]);
  });

  it('fanout - of one batch, only the changes of users followed here reach watchers, each in its order', async () => {
    const { transport, pushed, publish, follow } = node();
    let messages = 0;
    transport.subscribe(subjects.statusChanges(APP), () => messages++);
    follow(APP, 'w1', [], ['a', 'c']);
    publish(APP, status('a', 1));
    publish(APP, status('b', 1));
    publish(APP, status('c', 1));
    publish(APP, status('a', 2));
    await settled();
    expect(messages).toBe(1);
    expect(pushed).toEqual([`c-${APP}.w1<-a@1`, `c-${APP}.w1<-c@1`, `c-${APP}.w1<-a@2`]);
  });
});
