import { describe, expect, it } from 'vitest';
import { desiredOwner } from '../../src/cluster/rendezvous.js';
import { SHARD_COUNT } from '../../src/cluster/shards.js';

const THREE = ['node-a', 'node-b', 'node-c'];
const shards = Array.from({ length: SHARD_COUNT }, (_, shard) => shard);

function ownerMap(nodes: readonly string[]): Map<number, string | undefined> {
  return new Map(shards.map((shard) => [shard, desiredOwner(shard, nodes)]));
}

function counts(owners: Map<number, string | undefined>): Map<string, number> {
  const result = new Map<string, number>();
  for (const owner of owners.values()) if (owner !== undefined) result.set(owner, (result.get(owner) ?? 0) + 1);
  return result;
}

describe('rendezvous hashing', () => {
  it('rendezvous - the same shard and view always give the same owner', () => {
    const first = ownerMap(THREE);
    const second = ownerMap([...THREE]);
    expect(second).toEqual(first);
  });

  it('rendezvous - the owner does not depend on the order of the node list', () => {
    const sorted = ownerMap(THREE);
    const shuffled = ownerMap(['node-c', 'node-a', 'node-b']);
    const reversed = ownerMap([...THREE].reverse());
    expect(shuffled).toEqual(sorted);
    expect(reversed).toEqual(sorted);
  });

  it('rendezvous - every shard gets an owner taken from the node list', () => {
    for (const [shard, owner] of ownerMap(THREE)) {
      expect(THREE, `shard ${shard}`).toContain(owner);
    }
  });

  it('rendezvous - an empty view has no owner', () => {
    expect(desiredOwner(0, [])).toBeUndefined();
    expect(desiredOwner(SHARD_COUNT - 1, [])).toBeUndefined();
  });

  it('rendezvous - a single node owns every shard', () => {
    expect(new Set(ownerMap(['solo']).values())).toEqual(new Set(['solo']));
  });

  it('rendezvous - three nodes over 1024 shards each get between 25 % and 42 %', () => {
    const perNode = counts(ownerMap(THREE));
    expect([...perNode.keys()].sort()).toEqual(THREE);
    for (const node of THREE) {
      const share = perNode.get(node)! / SHARD_COUNT;
      expect(share, node).toBeGreaterThanOrEqual(0.25);
      expect(share, node).toBeLessThanOrEqual(0.42);
    }
  });

  it('rendezvous - removing a node moves only the shards that node owned', () => {
    const before = ownerMap(THREE);
    const after = ownerMap(['node-a', 'node-c']);
    for (const shard of shards) {
      if (before.get(shard) !== 'node-b') expect(after.get(shard), `shard ${shard}`).toBe(before.get(shard));
      else expect(['node-a', 'node-c'], `shard ${shard}`).toContain(after.get(shard));
    }
  });

  it("rendezvous - a removed node's shards are spread over all survivors", () => {
    const before = ownerMap(THREE);
    const after = ownerMap(['node-a', 'node-c']);
    const orphaned = shards.filter((shard) => before.get(shard) === 'node-b');
    const receivers = counts(new Map(orphaned.map((shard) => [shard, after.get(shard)])));
    // Each survivor takes a fair part (about half) of what node-b had.
    for (const survivor of ['node-a', 'node-c']) {
      expect(receivers.get(survivor) ?? 0, survivor).toBeGreaterThan(orphaned.length * 0.3);
    }
  });

  it('rendezvous - adding a fourth node moves only shards to the new node', () => {
    const before = ownerMap(THREE);
    const after = ownerMap([...THREE, 'node-d']);
    for (const shard of shards) {
      if (after.get(shard) !== before.get(shard)) expect(after.get(shard), `shard ${shard}`).toBe('node-d');
    }
  });

  it('rendezvous - adding a fourth node moves roughly a quarter of the shards', () => {
    const before = ownerMap(THREE);
    const after = ownerMap([...THREE, 'node-d']);
    const moved = shards.filter((shard) => after.get(shard) !== before.get(shard)).length;
    expect(moved / SHARD_COUNT).toBeGreaterThanOrEqual(0.17);
    expect(moved / SHARD_COUNT).toBeLessThanOrEqual(0.33);
  });
});
