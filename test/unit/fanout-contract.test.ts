import { Histogram } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import type { Device, UserStatus } from '../../src/actors/types.js';
import { decode, encode, encodeBounded } from '../../src/cluster/codec.js';
import type { GatewayDelivery } from '../../src/cluster/commands.js';
import { DeliveryBatcher, halvesOf } from '../../src/cluster/delivery.js';
import { FanOut } from '../../src/cluster/fanout.js';
import { subjects } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import type { MessageHandler } from '../../src/cluster/transport/types.js';

const APP = 1400000001;

const status = (userID: string, version: number): UserStatus => ({ userID, statusType: 1, customStatus: `v${version}`, version, lastSeenAt: 0 });

/** The embedded transport, its handlers' throws caught and kept as the NATS transport catches and logs them. */
class CatchingTransport extends EmbeddedTransport {
  readonly thrown: unknown[] = [];

  override subscribe(subject: string, handler: MessageHandler) {
    return super.subscribe(subject, (data, s) => {
      try {
        handler(data, s);
      } catch (error) {
        this.thrown.push(error);
      }
    });
  }
}

/**
 * A node's fan-out over the embedded transport; changes come as other nodes' batches
 * published on the app's subject. Watcher `<w>` has the devices `devices[w]` (one,
 * connection `c-<w>`, unless set), all on gateway `gw`, handed over in process.
 */
function node(observeLatency?: (seconds: number) => void) {
  const transport = new CatchingTransport();
  const delivery = new DeliveryBatcher(transport);
  const pushed: string[] = [];
  const delivered: Array<() => void> = [];
  delivery.connectLocal('gw', (message: GatewayDelivery) => {
    for (const [connId, indexes] of message.pushes ?? []) {
      for (const i of indexes) pushed.push(`${connId}<-${message.statuses![i]!.userID}@${message.statuses![i]!.version}`);
    }
    delivered.splice(0).forEach((resolve) => resolve());
  });
  const devices = new Map<string, string[]>();
  const device = (connId: string): Device => ({ connId, gatewayId: 'gw', platform: 'web', heartbeatDeadline: 0 });
  const fanout = new FanOut<string>(transport, delivery, (w) => (devices.get(w) ?? [`c-${w}`]).map(device), observeLatency);
  /** A batch of changes from another node, as its StatusBatcher publishes it. */
  const batch = (...statuses: unknown[]) => transport.publish(subjects.statusChanges(APP), encode({ app: APP, at: Date.now(), statuses }));
  const message = (value: unknown) => transport.publish(subjects.statusChanges(APP), encode(value));
  const follow = (w: string, previous: string[], next: string[]) => fanout.follow(w, APP, new Set(previous), new Set(next));
  /** Resolves when the node's gateway has been handed its next delivery. */
  const nextDelivery = () => new Promise<void>((resolve) => delivered.push(resolve));
  /** The shard host's offer of a stored status to a device coming back. */
  const offer = (stored: UserStatus, connId: string) => fanout.offer(APP, stored, [device(connId)]);
  return { transport, pushed, devices, batch, message, follow, offer, nextDelivery };
}

describe('fanout contract', () => {
  it('fanout contract - a watcher with two devices gets each of a user\'s changes of one tick once on each device, in order', async () => {
    const n = node();
    n.devices.set('w1', ['c-w1-phone', 'c-w1-web']);
    n.follow('w1', [], ['a']);
    n.batch(status('a', 1), status('a', 2));
    await n.nextDelivery();
    expect(n.pushed.filter((p) => p.startsWith('c-w1-phone'))).toEqual(['c-w1-phone<-a@1', 'c-w1-phone<-a@2']);
    expect(n.pushed.filter((p) => p.startsWith('c-w1-web'))).toEqual(['c-w1-web<-a@1', 'c-w1-web<-a@2']);
    expect(n.pushed).toHaveLength(4);
  });

  it('fanout contract - a watcher added in the tick of a change gets it, one removed in that tick does not', async () => {
    const n = node();
    n.follow('w1', [], ['a']);
    n.follow('w2', [], ['a']);
    n.batch(status('a', 1));
    n.follow('w1', ['a'], []);
    n.follow('w3', [], ['a']);
    await n.nextDelivery();
    expect(n.pushed.sort()).toEqual(['c-w2<-a@1', 'c-w3<-a@1']);
  });

  it('fanout contract - a watcher that follows another set of users keeps the app\'s one subscription', () => {
    const n = node();
    const subscribe = vi.spyOn(n.transport, 'subscribe');
    n.follow('w1', [], ['a']);
    n.follow('w1', ['a'], ['b']);
    expect(subscribe).toHaveBeenCalledTimes(1);
  });

  it('fanout contract - an entry whose version is no count (Infinity, NaN, a fraction) is skipped and does not silence the user', async () => {
    const n = node();
    n.follow('w1', [], ['a', 'b']);
    n.batch(status('a', Infinity), status('b', NaN), status('b', 1.5), status('c', 1));
    n.batch(status('a', 1), status('b', 1));
    await n.nextDelivery();
    expect(n.pushed).toEqual(['c-w1<-a@1', 'c-w1<-b@1']);
  });

  it('fanout contract - a batch whose time is no number (NaN) is skipped without throwing from the fan-out latency metric', async () => {
    const latency = new Histogram({ name: 'fanout_contract_latency_seconds', help: 'as the node\'s fan-out latency', registers: [] });
    const n = node((seconds) => latency.observe(seconds));
    n.follow('w1', [], ['a']);
    n.message({ app: APP, at: NaN, statuses: [status('a', 1)] });
    n.batch(status('a', 2));
    await n.nextDelivery();
    expect(n.transport.thrown).toEqual([]);
    expect(n.pushed).toEqual(['c-w1<-a@2']);
  });

  it('fanout contract - a late change older than one already delivered is not delivered after the watcher follows again', async () => {
    const n = node();
    n.follow('w1', [], ['a']);
    n.batch(status('a', 6));
    await n.nextDelivery();
    // Its device went and came back (or it was unloaded and loaded again): its interest ends and is
    // taken anew, and the shard host offers the device a's stored status (pushFollowed).
    n.follow('w1', ['a'], []);
    n.follow('w1', [], ['a']);
    n.offer(status('a', 6), 'c-w1');
    // a@5 from a's previous owner, late after a failover, then the current owner's a@7.
    n.batch(status('a', 5));
    n.batch(status('a', 7));
    await n.nextDelivery();
    expect(n.pushed).toEqual(['c-w1<-a@6', 'c-w1<-a@6', 'c-w1<-a@7']);
  });

  it('fanout contract - a stored status offered to a device coming back reaches it, and no other watcher twice', async () => {
    const n = node();
    n.follow('w1', [], ['a']);
    n.follow('w2', [], ['a']);
    n.batch(status('a', 3));
    await n.nextDelivery();
    // w2's device comes back: a@3 again for it alone, already dispatched here.
    n.offer(status('a', 3), 'c-w2');
    await n.nextDelivery();
    expect(n.pushed.slice(2)).toEqual(['c-w2<-a@3']);
  });
  it('fanout contract - a gateway message split to any bound delivers every push once, each connection in order, each kick after all pushes', () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 300; round++) {
      const statuses = Array.from({ length: 1 + random(30) }, (_, i) => status(`u${random(8)}`, i + 1));
      const connections = 1 + random(6);
      const pushes: Array<[string, number[]]> = [];
      for (let c = 0; c < connections; c++) {
        const indexes = Array.from({ length: random(8) }, () => random(statuses.length)).sort((a, b) => a - b);
        if (indexes.length) pushes.push([`c${c}`, indexes]);
      }
      const kicks: Array<[string, number]> = Array.from({ length: random(4) }, () => [`c${random(connections + 2)}`, 6208]);
      const message: GatewayDelivery = {};
      if (pushes.length) Object.assign(message, { statuses, pushes });
      if (kicks.length) message.kicks = kicks;
      const bound = 20 + random(encode(message).length);
      const parts = encodeBounded(message, halvesOf, bound).map((bytes) => decode<GatewayDelivery>(bytes));
      const got = new Map<string, number[]>();
      const gotKicks: Array<[string, number]> = [];
      for (const part of parts) {
        for (const [connId, indexes] of part.pushes ?? []) {
          expect(gotKicks).toEqual([]);
          got.set(connId, [...(got.get(connId) ?? []), ...indexes.map((i) => part.statuses![i]!.version)]);
        }
        gotKicks.push(...(part.kicks ?? []));
      }
      expect(got).toEqual(new Map(pushes.map(([connId, indexes]) => [connId, indexes.map((i) => statuses[i]!.version)])));
      expect(gotKicks).toEqual(kicks);
    }
  });
});
