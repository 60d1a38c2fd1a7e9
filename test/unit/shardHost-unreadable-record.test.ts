import { describe, expect, it } from 'vitest';
import { UserStatusType, type UserStatus } from '../../src/actors/types.js';
import { decode, decodeSequence, encodeSequence } from '../../src/cluster/codec.js';
import type { ShardCommand } from '../../src/cluster/commands.js';
import { SHARD_COUNT } from '../../src/cluster/shards.js';
import { subjects, userKey } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import { MemoryKvBucket } from '../../src/cluster/transport/memoryKv.js';
import { FIXTURE_APP as APP, shardHostOn } from '../support/shardHostFixture.js';

/**
 * A `users` value the node cannot read (damaged, or written by a later version) used to fail
 * every command of its user with 70500 until someone removed the key. The user now starts afresh,
 * as after an admin kick.
 */

const KEY = userKey(APP, 'alice');

const login = (sigTime: number, deviceId = 'web'): ShardCommand =>
  ({ op: 'login', app: APP, user: 'alice', deviceId, connId: `c-${deviceId}-${sigTime}`, gatewayId: 'gw', platform: 'web', sigTime });
const logout = (sigTime: number, deviceId = 'web'): ShardCommand =>
  ({ op: 'logout', app: APP, user: 'alice', deviceId, connId: `c-${deviceId}-${sigTime}` });

async function host() {
  const transport = new EmbeddedTransport();
  const users = new MemoryKvBucket('pres_users');
  const { shardHost, clock, delivery } = await shardHostOn(transport, { users });
  delivery.connectLocal('gw', () => undefined);
  shardHost.serve(Array.from({ length: SHARD_COUNT }, (_, shard) => shard));
  const announced: UserStatus[] = [];
  transport.subscribe(subjects.statusChanges(APP), (data) => announced.push(...decode<{ statuses: UserStatus[] }>(data).statuses));
  const nowSeconds = () => Math.floor(clock.now() / 1000);
  return { users, clock, shardHost, announced, nowSeconds, run: (command: ShardCommand) => shardHost.handleHere(command)! };
}

/** The status and snapshot a value holds, once it is readable again. */
async function stored(users: MemoryKvBucket) {
  const entry = await users.get(KEY);
  const [status, record] = decodeSequence(entry!.value) as [UserStatus, { snapshot: { value: unknown; context: { revokedAt: number; version: number } } }];
  return { status, snapshot: record.snapshot, revision: entry!.revision };
}

describe('shard host - a user whose stored state cannot be read', () => {
  it('shard host - a value that is not msgpack is replaced by a fresh UNLOGINED user at once, its UserSigs up to now revoked, its version above any a watcher holds', async () => {
    const { users, clock, announced, nowSeconds, run } = await host();
    await users.create(KEY, new Uint8Array([0xc1, 0xc1]));

    // The login that found it was signed before now: refused as after a kick, not with 70500.
    expect(await run(login(nowSeconds()))).toMatchObject({ ok: false, error: { code: 70052 } });
    const written = await stored(users);
    expect(written.status).toMatchObject({ statusType: UserStatusType.UNLOGINED, version: clock.now() });
    expect(written.snapshot.context.revokedAt).toBe(clock.now());
    await new Promise((resolve) => setImmediate(resolve)); // announced at the end of the tick
    expect(announced).toEqual([written.status]);

    // Written once, not revoked anew by each load: a UserSig signed after that second is taken.
    clock.increment(2_000);
    expect(await run(login(nowSeconds()))).toMatchObject({ ok: true, status: { statusType: UserStatusType.ONLINE, version: clock.now() - 2_000 + 1 } });
  });

  it('shard host - when the status in front of an unreadable record still decodes, the fresh user continues from its version', async () => {
    const { users, shardHost, nowSeconds, clock, run } = await host();
    const last: UserStatus = { userID: 'alice', statusType: UserStatusType.ONLINE, customStatus: 'in a call', version: 7, lastSeenAt: 0 };
    await users.create(KEY, encodeSequence(last, 42));

    clock.increment(1_000);
    expect(await run(login(nowSeconds() + 1))).toMatchObject({ ok: true, status: { statusType: UserStatusType.ONLINE, version: 9 } });
    expect((await stored(users)).status.version).toBe(9);
    expect(shardHost.resident(APP, 'alice')!.context.customStatus).toBe('');
  });

  it('shard host - a snapshot of the right shape in a state the machine does not have starts afresh too, and other users are not touched', async () => {
    const { users, nowSeconds, clock, run } = await host();
    await run({ op: 'login', app: APP, user: 'bob', deviceId: 'web', connId: 'c-bob', gatewayId: 'gw', platform: 'web', sigTime: nowSeconds() });
    await run(login(nowSeconds()));
    await run(logout(nowSeconds())); // alice passivated at version 2
    const { status, snapshot, revision } = await stored(users);
    expect(status.version).toBe(2);
    await users.update(KEY, encodeSequence(status, { snapshot: { ...snapshot, value: 'nowhere' }, outbox: [] }), revision);

    clock.increment(1_000);
    expect(await run(login(nowSeconds() + 1))).toMatchObject({ ok: true, status: { statusType: UserStatusType.ONLINE, version: 4 } });
    expect(await run({ op: 'setCustomStatus', app: APP, user: 'bob', deviceId: 'web', connId: 'c-bob', customStatus: 'here' })).toMatchObject({ ok: true });
  });

  it('shard host - a record missing a field its actor restores from is unreadable, not an actor built on undefined', async () => {
    const { users, nowSeconds, clock, run } = await host();
    await run(login(nowSeconds()));
    await run(logout(nowSeconds()));
    const { status, snapshot, revision } = await stored(users);
    const { devices: _gone, ...context } = snapshot.context as unknown as Record<string, unknown>;
    await users.update(KEY, encodeSequence(status, { snapshot: { ...snapshot, context }, outbox: [] }), revision);

    clock.increment(1_000);
    expect(await run(login(nowSeconds() + 1))).toMatchObject({ ok: true, status: { statusType: UserStatusType.ONLINE, version: 4 } });
    expect((await stored(users)).snapshot.context).toHaveProperty('devices');
  });
});
