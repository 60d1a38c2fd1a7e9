import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../src/actors/index.js';
import { UserStatusType } from '../../src/actors/types.js';
import type { ShardCommand } from '../../src/cluster/commands.js';
import { decodeSequence, encode } from '../../src/cluster/codec.js';
import { SHARD_COUNT, shardOf } from '../../src/cluster/shards.js';
import { UserStore } from '../../src/cluster/stores/users.js';
import { userKey } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import { MemoryKvBucket } from '../../src/cluster/transport/memoryKv.js';
import type { KvBucket } from '../../src/cluster/transport/types.js';
import { shardHostOn } from '../support/shardHostFixture.js';

const APP = 1400000001;
const HB = DEFAULT_LIMITS.heartbeatTimeoutMs;

/** A bucket whose reads and updates wait while `hold()` holds them; erases fail while `failingErase`. */
class HeldBucket extends MemoryKvBucket {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  failingErase = false;
  /** Per update taken: the status version written, and the versions of the webhook events written with it. */
  readonly updates: Array<{ version: number; events: number[] }> = [];

  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }

  release(): void {
    this.open?.();
    this.gate = undefined;
  }

  override async get(key: string) {
    await this.gate;
    return super.get(key);
  }

  override async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    await this.gate;
    const [status, record] = decodeSequence(value) as [{ version: number }, { outbox: Array<{ body: { Version: number } }> }];
    this.updates.push({ version: status.version, events: record.outbox.map((event) => event.body.Version) });
    return super.update(key, value, revision);
  }

  override async erase(key: string, revision?: number): Promise<void> {
    if (this.failingErase) throw new Error('JetStream did not answer');
    return super.erase(key, revision);
  }
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

async function host({ active, callbackUrl }: { active?: KvBucket; callbackUrl?: string } = {}) {
  const transport = new EmbeddedTransport();
  const users = new HeldBucket('pres_users');
  const { shardHost, clock, delivery } = await shardHostOn(transport, { users, ...(active ? { active } : {}), ...(callbackUrl ? { callbackUrl } : {}) });
  delivery.connectLocal('gw', () => undefined);
  shardHost.serve(Array.from({ length: SHARD_COUNT }, (_, shard) => shard));
  return {
    clock,
    users,
    shardHost,
    run: (command: ShardCommand) => shardHost.handleHere(command)!,
    resident: (userID = 'alice') => shardHost.resident(APP, userID),
  };
}

const login = (user: string, deviceId = 'web') => ({ app: APP, user, deviceId, connId: `c-${user}-${deviceId}`, op: 'login' as const, gatewayId: 'gw', platform: 'web' as const, sigTime: 0 });
const logout = (user: string, deviceId = 'web') => ({ app: APP, user, deviceId, connId: `c-${user}-${deviceId}`, op: 'logout' as const });

describe('shard host contract', () => {
  it('shard host - one user whose stored value is corrupt reads as UNKNOWN at version 0, and the others of a query are still answered', async () => {
    const { users, run, shardHost } = await host();
    await run(login('carol'));
    await run(logout('carol')); // passivated: read from the bucket
    await users.create(userKey(APP, 'bob'), encode(42));
    await users.create(userKey(APP, 'dave'), new Uint8Array(0));
    await users.create(userKey(APP, 'erin'), new Uint8Array([0xc1]));
    const statuses = await shardHost.statuses(APP, ['bob', 'carol', 'dave', 'erin']);
    expect(statuses).toMatchObject([
      { userID: 'bob', statusType: UserStatusType.UNKNOWN, version: 0 },
      { userID: 'carol', statusType: UserStatusType.UNLOGINED, version: 2 },
      { userID: 'dave', statusType: UserStatusType.UNKNOWN, version: 0 },
      { userID: 'erin', statusType: UserStatusType.UNKNOWN, version: 0 },
    ]);
  });

  it('shard host - a user watched by a dashboard, with nothing pending, leaves memory once the watch ends', async () => {
    const { clock, run, resident, shardHost } = await host();
    await run(login('alice'));
    await run(logout('alice'));
    expect(resident()).toBeUndefined();
    expect(await run({ app: APP, user: 'alice', op: 'inspect', watchMs: 10_000 })).toMatchObject({ ok: true });
    expect(resident()).toBeDefined();
    clock.increment(10_001);
    for (let i = 0; i < 10 && resident(); i++) await turn();
    expect(resident()).toBeUndefined();
    await shardHost.stop();
  });

  it('shard host - a command whose actor finishes loading after its shard was dropped does not run, and leaves no actor in memory', async () => {
    const { users, run, resident, shardHost } = await host();
    users.hold();
    const pending = run(login('alice'));
    await turn();
    shardHost.drop(shardOf(APP, 'alice'));
    users.release();
    expect(await pending).toMatchObject({ ok: false, moved: true });
    expect(resident()).toBeUndefined();
    expect(await users.get(userKey(APP, 'alice'))).toBeNull();
    await shardHost.stop();
  });

  it('shard host - a command queued behind another when the shard is dropped does not load the user again on a shard no longer served', async () => {
    const { users, run, resident, shardHost } = await host();
    await run(login('alice'));
    users.hold();
    const first = run({ app: APP, user: 'alice', deviceId: 'web', connId: 'c-alice-web', op: 'setCustomStatus', customStatus: 'first' });
    const second = run({ app: APP, user: 'alice', deviceId: 'web', connId: 'c-alice-web', op: 'setCustomStatus', customStatus: 'second' });
    await turn();
    shardHost.drop(shardOf(APP, 'alice'));
    users.release();
    await first;
    expect(await second).toMatchObject({ ok: false, moved: true });
    expect(resident()).toBeUndefined();
    await shardHost.stop();
  });

  it('shard host - a logout whose change is durable and announced is answered ok though its index entry could not be erased', async () => {
    const active = new HeldBucket('pres_active');
    const { users, run, resident, shardHost } = await host({ active });
    await run(login('alice'));
    active.failingErase = true;
    expect(await run(logout('alice'))).toMatchObject({ ok: true });
    expect(await new UserStore(users).status(APP, 'alice')).toMatchObject({ statusType: UserStatusType.UNLOGINED });
    // Nothing pending: it left memory all the same (its entry, one too many, is restored and found idle at a takeover).
    expect(resident()).toBeUndefined();
    await shardHost.stop();
  });

  it('shard host - a heartbeat deadline that passes while a user is in memory only for a dashboard still takes her OFFLINE and out of memory', async () => {
    const { clock, run, resident, shardHost } = await host({ active: new HeldBucket('pres_active') });
    await run(login('alice'));
    await run({ app: APP, user: 'alice', op: 'inspect', watchMs: 1_000 });
    clock.increment(HB + 1);
    for (let i = 0; i < 10 && resident(); i++) await turn();
    expect(resident()).toBeUndefined();
    await shardHost.stop();
  });

  it('shard host - a webhook taken by the app server while a timer transition waits is removed after that transition is committed, never written ahead of it', async () => {
    // The receiver refuses every POST: the test says itself which event the app server took.
    const { clock, users, run, shardHost } = await host({ callbackUrl: 'http://127.0.0.1:9/' });
    await run(login('alice'));
    const key = userKey(APP, 'alice');
    const taken = (await new UserStore(users).load(APP, 'alice'))!.outbox[0]!.id;
    users.hold();
    const status = run({ app: APP, user: 'alice', deviceId: 'web', connId: 'c-alice-web', op: 'setCustomStatus', customStatus: 'x' });
    await turn();
    // What the dispatcher calls on a 2xx; it waits in alice's queue behind the command.
    const delivered = (shardHost as unknown as { webhookDelivered(key: string, eventId: string): Promise<void> }).webhookDelivered(key, taken);
    // Her heartbeat deadline passes meanwhile: OFFLINE, committed behind the delivery.
    clock.increment(HB + 1);
    users.release();
    await Promise.all([status, delivered]);
    for (let i = 0; i < 10 && users.updates.length < 4; i++) await turn();
    // Every version written goes with its webhook event: a version written without it would be
    // durable, with its webhook lost and never announced, if the node died right after.
    for (const { version, events } of users.updates) expect(events).toContain(version);
    await shardHost.stop();
  });
});
