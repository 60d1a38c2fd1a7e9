import { describe, expect, it } from 'vitest';
import { TickBatch } from '../../src/cluster/tickBatch.js';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function recorder() {
  const sent: Array<Array<[string, number[]]>> = [];
  const batch = new TickBatch<string, number>((pending) => sent.push([...pending]));
  return { batch, sent };
}

describe('tick batch', () => {
  it('tick batch - what one turn adds is handed over once when the turn ends, per key in order', async () => {
    const { batch, sent } = recorder();
    batch.add('a', 1);
    batch.add('b', 2);
    batch.add('a', 3);
    expect(sent).toEqual([]);
    await nextTurn();
    expect(sent).toEqual([[['a', [1, 3]], ['b', [2]]]]);
  });

  it('tick batch - a later turn starts a new batch', async () => {
    const { batch, sent } = recorder();
    batch.add('a', 1);
    await nextTurn();
    batch.add('a', 2);
    await nextTurn();
    expect(sent).toEqual([[['a', [1]]], [['a', [2]]]]);
  });

  it('tick batch - flush hands over at once, and the end of the turn then sends nothing more', async () => {
    const { batch, sent } = recorder();
    batch.add('a', 1);
    batch.flush();
    expect(sent).toEqual([[['a', [1]]]]);
    await nextTurn();
    expect(sent).toHaveLength(1);
    batch.flush();
    expect(sent).toHaveLength(1);
  });
});
