import { describe, expect, it } from 'vitest';
import type { ShardCommand } from '../../src/cluster/commands.js';
import { shardOf } from '../../src/cluster/shards.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import type { RequestHandler, Subscription } from '../../src/cluster/transport/types.js';
import { FIXTURE_APP as APP, shardHostOn } from '../support/shardHostFixture.js';

/**
 * A hand-over cut loose by the ownership step's 20 s bound (its subscription's drain hangs with a
 * lost connection), then a fence (`drop`) and a later step that takes the shard again (`acquire`),
 * as test/unit/cluster-cut-loose-step.test.ts drives it at the lease level. When the late release
 * goes on, it must leave the actors of the shard as served again alone.
 */

const login = (user: string, deviceId: string): ShardCommand =>
  ({ op: 'login', app: APP, user, deviceId, connId: `c-${deviceId}`, gatewayId: 'gw', platform: 'web', sigTime: 0 });

class HeldDrainTransport extends EmbeddedTransport {
  private held: { reached: () => void; gate: Promise<void> } | undefined;

  holdNextDrain(): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const reachedP = new Promise<void>((r) => (reached = r));
    const gate = new Promise<void>((r) => (release = r));
    this.held = { reached, gate };
    return { reached: reachedP, release };
  }

  override serve(subject: string, handler: RequestHandler): Subscription {
    const subscription = super.serve(subject, handler);
    const held = this.held;
    this.held = undefined;
    if (!held) return subscription;
    return {
      unsubscribe: () => subscription.unsubscribe(),
      drain: async () => {
        held.reached();
        await held.gate;
      },
    };
  }
}

describe('shard host - a late release', () => {
  it('shard host - a release that goes on after a fence and a new claim of its shard leaves the actors loaded since resident, following and served', async () => {
    const transport = new HeldDrainTransport();
    const { shardHost } = await shardHostOn(transport, { nodeId: 'a' });
    const shard = shardOf(APP, 'alice');

    const drain = transport.holdNextDrain();
    await shardHost.acquire(shard, 1);
    expect(await shardHost.handle(login('alice', 'web'))).toMatchObject({ ok: true });

    const release = shardHost.release(shard); // the hand-over; its drain hangs past the step's bound
    await drain.reached;
    shardHost.drop(shard); // fenced
    await shardHost.acquire(shard, 2); // live again: a later step takes the shard again
    expect(await shardHost.handle(login('alice', 'web'))).toMatchObject({ ok: true });
    const served = shardHost.resident(APP, 'alice');
    expect(served).toBeDefined();

    drain.release(); // the late hand-over goes on
    await release;
    expect(shardHost.ownedShards).toContain(shard);
    expect(shardHost.resident(APP, 'alice')).toBe(served);
    await shardHost.stop();
    await transport.close();
  });
});
