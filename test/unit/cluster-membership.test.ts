import { afterEach, describe, expect, it } from 'vitest';
import { decode, encode } from '../../src/cluster/codec.js';
import { DEFAULT_MEMBERSHIP_TIMING, Membership, type MemberRecord } from '../../src/cluster/membership.js';
import { subjects } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import { LinkTransport, flush, makeClock } from '../support/linkTransport.js';

const { renewMs, deadAfterMs, fenceAfterMs, probeAfterMs, probeConfirmMs } = DEFAULT_MEMBERSHIP_TIMING;

interface TestNode {
  id: string;
  incarnation: string;
  link: LinkTransport;
  membership: Membership;
}

type Heartbeat = { op: 'alive'; record: MemberRecord } | { op: 'leave'; nodeId: string; incarnation: string };

let transport: EmbeddedTransport;
let started: Membership[] = [];

afterEach(async () => {
  for (const membership of started) membership.stop();
  started = [];
  await transport?.close();
});

/**
 * Starts `ids` one after another on one shared transport and one manual clock. A node only
 * hears heartbeats published after it subscribed, so by default every node then renews once
 * (at the same instant) for each to have heard all the others, as happens within `renewMs`.
 */
async function setup(ids: string[], { announce = true } = {}) {
  transport = new EmbeddedTransport();
  const clock = makeClock();
  const nodes = new Map<string, TestNode>();
  const startNode = async (id: string, incarnation = `${id}-inc-1`): Promise<TestNode> => {
    const link = new LinkTransport(transport);
    const record: MemberRecord = { nodeId: id, incarnation, startedAt: clock.now(), shards: 0, actors: 0 };
    const membership = new Membership(link, record, clock, DEFAULT_MEMBERSHIP_TIMING);
    await membership.start();
    started.push(membership);
    const node = { id, incarnation, link, membership };
    nodes.set(id, node);
    return node;
  };
  for (const id of ids) await startNode(id);
  await flush();
  const node = (id: string): TestNode => nodes.get(id)!;
  /** Advances time by `ms` (one renewal period by default), then renews only `renewing` (publish, then delivery). */
  const step = async (renewing: string[], ms = renewMs) => {
    clock.t += ms;
    await Promise.all(renewing.map((id) => node(id).membership.renew().catch(() => undefined)));
    await flush();
  };
  if (announce) await step(ids, 0);
  return { clock, node, startNode, step };
}

/** Everything published on the heartbeat subject from now on, decoded. */
function listenToHeartbeats(): Heartbeat[] {
  const heard: Heartbeat[] = [];
  transport.subscribe(subjects.heartbeats, (data) => heard.push(decode<Heartbeat>(data)));
  return heard;
}

describe('membership', () => {
  it('membership - start resolves once the node heard itself: it is live and in its own view', async () => {
    const { node } = await setup(['node-a'], { announce: false });
    expect(node('node-a').membership.isLive).toBe(true);
    expect(node('node-a').membership.view()).toEqual(['node-a']);
  });

  it('membership - right after start a node knows only those heard since it subscribed', async () => {
    const { node } = await setup(['node-b', 'node-a', 'node-c'], { announce: false });
    // node-b started first and heard the start heartbeats of node-a and node-c; node-c heard nobody yet.
    expect(node('node-b').membership.view()).toEqual(['node-a', 'node-b', 'node-c']);
    expect(node('node-a').membership.view()).toEqual(['node-a', 'node-c']);
    expect(node('node-c').membership.view()).toEqual(['node-c']);
  });

  it('membership - after one renewal every node sees itself and the others, sorted', async () => {
    const { node } = await setup(['node-b', 'node-a', 'node-c']);
    for (const id of ['node-a', 'node-b', 'node-c']) {
      expect(node(id).membership.view(), id).toEqual(['node-a', 'node-b', 'node-c']);
    }
  });

  it('membership - records() lists this node first with its latest load figures', async () => {
    const { node, step } = await setup(['node-a', 'node-b']);
    await node('node-a').membership.renew({ shards: 7, actors: 42 });
    await step(['node-b'], 0);
    expect(node('node-a').membership.records()[0]).toMatchObject({ nodeId: 'node-a', shards: 7, actors: 42 });
    const seenByB = node('node-b').membership.records().find((r) => r.nodeId === 'node-a');
    expect(seenByB).toMatchObject({ nodeId: 'node-a', incarnation: 'node-a-inc-1', shards: 7, actors: 42 });
    expect(node('node-b').membership.records()[0]?.nodeId).toBe('node-b');
  });

  it('membership - a node that joins later appears in the view of those already running', async () => {
    const { node, startNode, step } = await setup(['node-a', 'node-b']);
    await startNode('node-c');
    await flush();
    expect(node('node-a').membership.view()).toEqual(['node-a', 'node-b', 'node-c']);
    expect(node('node-b').membership.view()).toEqual(['node-a', 'node-b', 'node-c']);
    // ... and the newcomer sees them once they renew.
    await step(['node-a', 'node-b', 'node-c']);
    expect(node('node-c').membership.view()).toEqual(['node-a', 'node-b', 'node-c']);
  });

  it('membership - onChange listeners hear about another node joining', async () => {
    const { node, startNode } = await setup(['node-a']);
    let calls = 0;
    node('node-a').membership.onChange(() => calls++);
    await startNode('node-b');
    await flush();
    expect(calls).toBeGreaterThan(0);
  });

  it('membership - onChange listeners are not called again for every heartbeat of a known node', async () => {
    const { node, step } = await setup(['node-a', 'node-b']);
    let calls = 0;
    node('node-a').membership.onChange(() => calls++);
    for (let i = 0; i < 4; i++) await step(['node-a', 'node-b']);
    expect(calls).toBe(0);
  });

  it('membership - a node that keeps renewing stays in the view of the others for longer than deadAfterMs', async () => {
    const { node, step } = await setup(['node-a', 'node-b', 'node-c']);
    for (let elapsed = 0; elapsed < deadAfterMs * 3; elapsed += renewMs) await step(['node-a', 'node-b', 'node-c']);
    expect(node('node-b').membership.view()).toEqual(['node-a', 'node-b', 'node-c']);
    expect(node('node-a').membership.isLive).toBe(true);
  });

  it('membership - a node not renewed for just under deadAfterMs is still in the view of the others', async () => {
    const { node, step } = await setup(['node-a', 'node-b', 'node-c']);
    await step(['node-b', 'node-c'], deadAfterMs - 1);
    expect(node('node-b').membership.view()).toContain('node-a');
    expect(node('node-c').membership.isAlive('node-a')).toBe(true);
  });

  it('membership - a node not renewed for deadAfterMs leaves the view of the others', async () => {
    const { node, step } = await setup(['node-a', 'node-b', 'node-c']);
    for (let elapsed = 0; elapsed < deadAfterMs; elapsed += renewMs) await step(['node-b', 'node-c']);
    expect(node('node-b').membership.view()).toEqual(['node-b', 'node-c']);
    expect(node('node-c').membership.view()).toEqual(['node-b', 'node-c']);
    expect(node('node-b').membership.isAlive('node-a')).toBe(false);
  });

  it('membership - a frozen node (no heartbeats) stops being live itself after fenceAfterMs, before the others judge it dead', async () => {
    const { node, step } = await setup(['node-a', 'node-b']);
    const a = node('node-a').membership;
    const b = node('node-b').membership;
    await step(['node-b'], fenceAfterMs - 1);
    expect(a.isLive).toBe(true);
    await step(['node-b'], 1);
    // No echo came back: node-a is fenced while node-b still counts it alive.
    expect(a.isLive).toBe(false);
    expect(a.view()).toEqual(['node-b']);
    expect(b.isAlive('node-a')).toBe(true);
    await step(['node-b'], deadAfterMs - fenceAfterMs);
    expect(b.isAlive('node-a')).toBe(false);
  });

  it('membership - a dead node that renews again comes back into the view', async () => {
    const { node, step } = await setup(['node-a', 'node-b']);
    for (let elapsed = 0; elapsed < deadAfterMs; elapsed += renewMs) await step(['node-b']);
    expect(node('node-b').membership.view()).toEqual(['node-b']);
    await step(['node-a', 'node-b']);
    expect(node('node-b').membership.view()).toEqual(['node-a', 'node-b']);
  });

  it('membership - a fenced node knows when the others may start to judge it dead, with a margin before deadAfterMs', async () => {
    const { node, step } = await setup(['node-a', 'node-b']);
    const a = node('node-a').membership;
    const b = node('node-b').membership;
    await step(['node-b'], fenceAfterMs);
    expect(a.isLive).toBe(false);
    expect(a.othersMayJudgeDead).toBe(false);
    await step(['node-b'], (deadAfterMs - fenceAfterMs) / 2);
    expect(a.othersMayJudgeDead).toBe(true);
    expect(b.isAlive('node-a')).toBe(true);
  });

  it('membership - a cut-off node reports isLive false after fenceAfterMs', async () => {
    const { node, step } = await setup(['node-a', 'node-b']);
    const a = node('node-a');
    a.link.down = true;
    await step(['node-a', 'node-b'], fenceAfterMs - 1);
    expect(a.membership.isLive).toBe(true);
    await step(['node-a', 'node-b'], 1);
    expect(a.membership.isLive).toBe(false);
  });

  it('membership - a cut-off node drops itself from its own view', async () => {
    const { node, step } = await setup(['node-a', 'node-b']);
    const a = node('node-a');
    a.link.down = true;
    for (let elapsed = 0; elapsed < fenceAfterMs; elapsed += renewMs) await step(['node-a', 'node-b']);
    expect(a.membership.view()).toEqual(['node-b']);
    expect(a.membership.isAlive('node-a')).toBe(false);
    expect(a.membership.records().map((r) => r.nodeId)).toEqual(['node-b']);
  });

  it('membership - a cut-off node renews without error (a core publish is not acknowledged) but nobody hears it', async () => {
    const { node, step } = await setup(['node-a', 'node-b']);
    const a = node('node-a');
    a.link.down = true;
    const heard = listenToHeartbeats();
    await expect(a.membership.renew()).resolves.toBeUndefined();
    await flush();
    expect(heard).toEqual([]);
    // Its only sign of trouble is its own missing echo: it is fenced before node-b judges it dead.
    for (let elapsed = renewMs; elapsed < deadAfterMs; elapsed += renewMs) {
      await step(['node-a', 'node-b']);
      if (!node('node-b').membership.isAlive('node-a')) expect(a.membership.isLive).toBe(false);
    }
    await step(['node-a', 'node-b']);
    expect(node('node-b').membership.isAlive('node-a')).toBe(false);
    expect(a.membership.isLive).toBe(false);
  });

  it('membership - a node whose link comes back is live again after its next renewal', async () => {
    const { node, step } = await setup(['node-a', 'node-b']);
    const a = node('node-a');
    a.link.down = true;
    await step(['node-a', 'node-b'], fenceAfterMs);
    expect(a.membership.isLive).toBe(false);
    a.link.down = false;
    await step(['node-a', 'node-b']);
    expect(a.membership.isLive).toBe(true);
    expect(a.membership.view()).toEqual(['node-a', 'node-b']);
  });

  it('membership - a node that still publishes but cannot hear its own heartbeat fences itself while the others see it alive', async () => {
    const { node, step } = await setup(['node-a', 'node-b', 'node-c']);
    const a = node('node-a');
    a.link.deaf = true;
    const heard = listenToHeartbeats();
    for (let elapsed = 0; elapsed < fenceAfterMs; elapsed += renewMs) await step(['node-a', 'node-b', 'node-c']);
    // Its heartbeats do go out ...
    expect(heard.filter((h) => h.op === 'alive' && h.record.nodeId === 'node-a').length).toBeGreaterThan(0);
    // ... so the others count it alive, but it never hears them come back: it is fenced.
    expect(a.membership.isLive).toBe(false);
    expect(a.membership.isAlive('node-a', 'node-a-inc-1')).toBe(false);
    expect(a.membership.view()).not.toContain('node-a');
    for (const id of ['node-b', 'node-c']) {
      expect(node(id).membership.isAlive('node-a', 'node-a-inc-1'), id).toBe(true);
      expect(node(id).membership.view(), id).toEqual(['node-a', 'node-b', 'node-c']);
    }
    // Once it hears itself again it is live at once.
    a.link.deaf = false;
    await step(['node-a', 'node-b', 'node-c']);
    expect(a.membership.isLive).toBe(true);
    expect(a.membership.view()).toEqual(['node-a', 'node-b', 'node-c']);
  });

  it('membership - leave() removes the node from the views of the others at once', async () => {
    const { clock, node } = await setup(['node-a', 'node-b', 'node-c']);
    const before = clock.t;
    await node('node-a').membership.leave();
    await flush();
    expect(clock.t).toBe(before);
    expect(node('node-b').membership.view()).toEqual(['node-b', 'node-c']);
    expect(node('node-c').membership.view()).toEqual(['node-b', 'node-c']);
    expect(node('node-b').membership.isAlive('node-a')).toBe(false);
  });

  it('membership - leave() tells the others through onChange', async () => {
    const { node } = await setup(['node-a', 'node-b']);
    let calls = 0;
    node('node-b').membership.onChange(() => calls++);
    await node('node-a').membership.leave();
    await flush();
    expect(calls).toBe(1);
  });

  it('membership - a node that left is no longer live itself', async () => {
    const { node } = await setup(['node-a', 'node-b']);
    await node('node-a').membership.leave();
    expect(node('node-a').membership.isLive).toBe(false);
    expect(node('node-a').membership.view()).not.toContain('node-a');
  });

  it('membership - a node that left is no longer live itself, even with a heartbeat of its own still in flight', async () => {
    const { node } = await setup(['node-a', 'node-b']);
    const a = node('node-a').membership;
    // A renewal timer fired just before the node stops: its echo is delivered during leave().
    const renewal = a.renew();
    await a.leave();
    await renewal;
    await flush();
    expect(a.isLive).toBe(false);
    expect(a.view()).not.toContain('node-a');
  });

  it('membership - leave() publishes a leave message for this incarnation on the heartbeat subject', async () => {
    const { node } = await setup(['node-a', 'node-b']);
    const heard = listenToHeartbeats();
    await node('node-a').membership.leave();
    await flush();
    expect(heard).toEqual([{ op: 'leave', nodeId: 'node-a', incarnation: 'node-a-inc-1' }]);
  });

  it('membership - a leave of an earlier incarnation does not remove the restarted node', async () => {
    const { clock, node, startNode } = await setup(['node-a', 'node-b']);
    node('node-a').membership.stop();
    clock.t += renewMs;
    await startNode('node-a', 'node-a-inc-2');
    await flush();
    transport.publish(subjects.heartbeats, encode({ op: 'leave', nodeId: 'node-a', incarnation: 'node-a-inc-1' }));
    await flush();
    expect(node('node-b').membership.isAlive('node-a', 'node-a-inc-2')).toBe(true);
    expect(node('node-b').membership.view()).toEqual(['node-a', 'node-b']);
  });

  it('membership - isAlive is true for a live node with its current incarnation', async () => {
    const { node } = await setup(['node-a', 'node-b']);
    expect(node('node-b').membership.isAlive('node-a', 'node-a-inc-1')).toBe(true);
    expect(node('node-a').membership.isAlive('node-a', 'node-a-inc-1')).toBe(true);
  });

  it('membership - isAlive is false for a live node asked about another incarnation', async () => {
    const { node } = await setup(['node-a', 'node-b']);
    expect(node('node-b').membership.isAlive('node-a', 'node-a-inc-0')).toBe(false);
    expect(node('node-a').membership.isAlive('node-a', 'node-a-inc-0')).toBe(false);
  });

  it('membership - after a restart the earlier incarnation is no longer alive', async () => {
    const { clock, node, startNode } = await setup(['node-a', 'node-b']);
    node('node-a').membership.stop();
    clock.t += renewMs;
    await startNode('node-a', 'node-a-inc-2');
    await flush();
    const b = node('node-b').membership;
    expect(b.isAlive('node-a', 'node-a-inc-1')).toBe(false);
    expect(b.isAlive('node-a', 'node-a-inc-2')).toBe(true);
    expect(b.view()).toEqual(['node-a', 'node-b']);
  });

  it('membership - isAlive is false for a node never seen once this node has listened for deadAfterMs', async () => {
    const { node, step } = await setup(['node-a']);
    for (let elapsed = 0; elapsed < deadAfterMs; elapsed += renewMs) await step(['node-a']);
    expect(node('node-a').membership.isAlive('node-z')).toBe(false);
    expect(node('node-a').membership.view()).toEqual(['node-a']);
  });

  it('membership - a second process started later with the same node id makes its own renew throw a clear error', async () => {
    const { clock, node, startNode, step } = await setup(['node-a', 'node-b']);
    const first = node('node-a').membership;
    clock.t += renewMs;
    const second = (await startNode('node-a', 'node-a-inc-other')).membership;
    // The first process renews as usual; the second hears it and refuses to go on.
    await step(['node-b'], 0);
    await expect(first.renew()).resolves.toBeUndefined();
    await flush();
    await expect(second.renew()).rejects.toThrow(/node id node-a is in use by another process \(incarnation node-a-inc-1\)/);
    await expect(second.renew()).rejects.toThrow(/give every node its own --node-id/);
    // The first, older process is not disturbed by the newer one's heartbeats.
    await expect(first.renew()).resolves.toBeUndefined();
  });

  it('membership - a process already running refuses to renew once another process with its node id starts at the same instant', async () => {
    const { node, startNode } = await setup(['node-a', 'node-b']);
    const first = node('node-a').membership;
    // Equal startedAt counts as older: the start heartbeat of the second one is enough.
    await startNode('node-a', 'node-a-inc-other');
    await expect(first.renew()).rejects.toThrow(/node id node-a is in use by another process \(incarnation node-a-inc-other\)/);
  });

  describe('probes of silent members', () => {
    /** Lets node-b probe the members it has not heard for `probeAfterMs`, and the answers come back. */
    const probe = async (prober: Membership) => {
      prober.probeSilent();
      await flush();
      await flush();
    };
    /** node-b, alone renewing, asks once the others have been silent for probeAfterMs, and again probeConfirmMs later. */
    const probeTwice = async (step: (renewing: string[], ms?: number) => Promise<void>, prober: Membership) => {
      await step(['node-b'], probeAfterMs);
      await probe(prober);
      await step(['node-b'], probeConfirmMs);
      await probe(prober);
    };

    it('membership - a killed node (its connection gone) is dead once two probes probeConfirmMs apart find nobody listening, long before deadAfterMs', async () => {
      const { node, step } = await setup(['node-a', 'node-b', 'node-c']);
      const b = node('node-b').membership;
      let changes = 0;
      b.onChange(() => changes++);
      node('node-a').membership.stop();
      await step(['node-b', 'node-c'], probeAfterMs);
      expect(b.isAlive('node-a')).toBe(true);
      await probe(b);
      expect(b.isAlive('node-a')).toBe(true);
      await step(['node-b', 'node-c'], probeConfirmMs - 1);
      await probe(b);
      expect(b.isAlive('node-a')).toBe(true);
      await step(['node-b', 'node-c'], 1);
      await probe(b);
      expect(b.isAlive('node-a')).toBe(false);
      expect(b.view()).toEqual(['node-b', 'node-c']);
      expect(changes).toBe(1);
      // node-c has not asked: it still waits for deadAfterMs.
      expect(node('node-c').membership.isAlive('node-a')).toBe(true);
    });

    it('membership - a member heard within probeAfterMs is not asked', async () => {
      const { node, step } = await setup(['node-a', 'node-b']);
      node('node-a').membership.stop();
      await step(['node-b'], probeAfterMs - 1);
      await probe(node('node-b').membership);
      expect(node('node-b').membership.isAlive('node-a')).toBe(true);
    });

    it('membership - a silent node that still answers (busy, its connection up) keeps its lease until deadAfterMs', async () => {
      const { node, step } = await setup(['node-a', 'node-b']);
      const b = node('node-b').membership;
      await step(['node-b'], probeAfterMs);
      await probe(b);
      expect(b.isAlive('node-a')).toBe(true);
      // The answer renews nothing: the lease is the heartbeat's.
      for (let elapsed = probeAfterMs; elapsed < deadAfterMs; elapsed += renewMs) {
        await step(['node-b'], Math.min(renewMs, deadAfterMs - elapsed));
        await probe(b);
        if (elapsed + renewMs < deadAfterMs) expect(b.isAlive('node-a')).toBe(true);
      }
      expect(b.isAlive('node-a')).toBe(false);
    });

    it('membership - a node found unreachable is back in the view with its next heartbeat (a connection that came back)', async () => {
      const { node, step } = await setup(['node-a', 'node-b']);
      const a = node('node-a');
      const b = node('node-b').membership;
      a.link.loseConnection();
      await probeTwice(step, b);
      expect(b.view()).toEqual(['node-b']);
      a.link.down = false;
      let changes = 0;
      b.onChange(() => changes++);
      await step(['node-a', 'node-b'], renewMs);
      expect(b.view()).toEqual(['node-a', 'node-b']);
      expect(changes).toBe(1);
      expect(a.membership.isLive).toBe(true);
    });

    it('membership - an answer from a later incarnation of the same node id ends the earlier one', async () => {
      const { node, step } = await setup(['node-a', 'node-b']);
      const b = node('node-b').membership;
      node('node-a').membership.stop();
      // Restarted under the same id: it answers probes before node-b has heard its heartbeat.
      transport.serve(subjects.nodeProbe('node-a'), () => encode({ incarnation: 'node-a-inc-2' }));
      await probeTwice(step, b);
      expect(b.isAlive('node-a', 'node-a-inc-1')).toBe(false);
    });

    it('membership - a node cut off without knowing it (a partition) is not found unreachable: probes of it go unanswered', async () => {
      const { node, step } = await setup(['node-a', 'node-b']);
      node('node-a').link.down = true;
      const b = node('node-b').membership;
      await step(['node-b'], probeAfterMs);
      await probe(b);
      expect(b.isAlive('node-a')).toBe(true);
    });

    it('membership - one "no responders" is not enough: a node back on another NATS server by the second probe stays alive', async () => {
      const { node, step } = await setup(['node-a', 'node-b']);
      const a = node('node-a');
      const b = node('node-b').membership;
      a.link.loseConnection();
      await step(['node-b'], probeAfterMs);
      await probe(b);
      a.link.down = false;
      await step(['node-b'], probeConfirmMs);
      await probe(b);
      expect(b.isAlive('node-a')).toBe(true);
      // Absent again later: it takes two answers again.
      a.link.loseConnection();
      await step(['node-b'], probeConfirmMs);
      await probe(b);
      expect(b.isAlive('node-a')).toBe(true);
    });

    it('membership - a node whose own link is down judges nobody by its failed probes', async () => {
      const { node, step } = await setup(['node-a', 'node-b']);
      const b = node('node-b');
      node('node-a').membership.stop();
      b.link.down = true;
      await step([], probeAfterMs);
      expect(b.membership.isLive).toBe(true);
      await probe(b.membership);
      expect(b.membership.isAlive('node-a')).toBe(true);
    });

    it('membership - a node not live itself (fenced) probes nobody', async () => {
      const { node, step } = await setup(['node-a', 'node-b']);
      node('node-a').membership.stop();
      await step([], fenceAfterMs);
      const b = node('node-b').membership;
      expect(b.isLive).toBe(false);
      await probe(b);
      // Still counted alive: only deadAfterMs of listening may judge it, and a fenced node does not listen.
      expect(b.isAlive('node-a')).toBe(true);
    });

    it('membership - a heartbeat heard while the probe is on its way wins over a "no responders" answer', async () => {
      const { node, step } = await setup(['node-a', 'node-b']);
      const b = node('node-b').membership;
      node('node-a').membership.stop();
      await step(['node-b'], probeAfterMs);
      await probe(b);
      // The connection comes back just as the confirming probe is asked: its heartbeat reaches
      // node-b first, then the answer that nobody listened (sent before the connection was back).
      const record: MemberRecord = { nodeId: 'node-a', incarnation: 'node-a-inc-1', startedAt: 0, shards: 0, actors: 0 };
      transport.serve(subjects.nodeProbe('node-a'), async () => {
        transport.publish(subjects.heartbeats, encode({ op: 'alive', record }));
        await flush();
        return null;
      });
      await step(['node-b'], probeConfirmMs);
      await probe(b);
      await flush();
      expect(b.isAlive('node-a')).toBe(true);
    });
  });
});
