import { RequestError } from '@nats-io/nats-core';
import { RequestOne } from '@nats-io/nats-core/internal';
import { describe, expect, it } from 'vitest';
import { cancelSettledRequestsWithoutStacks } from '../../src/cluster/transport/natsRequests.js';

interface Settled {
  resolved: unknown[];
  rejected: unknown[];
  cancelledInMux: number;
}

/** A nats.js request whose promise and mux record what they are told. */
function request(): { request: RequestOne; settled: Settled } {
  const settled: Settled = { resolved: [], rejected: [], cancelledInMux: 0 };
  const mux = { cancel: () => settled.cancelledInMux++ };
  const request = new RequestOne(mux as never, 'pres.v1.s.1.cmd', { timeout: 60_000 }, false);
  request.timer.cancel();
  (request as unknown as { deferred: unknown }).deferred = {
    resolve: (value: unknown) => settled.resolved.push(value),
    reject: (reason: unknown) => settled.rejected.push(reason),
  };
  return { request, settled };
}

describe('nats.js requests', () => {
  it('nats requests - an answered request is settled with its answer and cancelled without a new Error', () => {
    expect(cancelSettledRequestsWithoutStacks()).toBe(true);
    const first = request();
    const second = request();
    const answer = { data: new Uint8Array([1]) };
    first.request.resolver(null as never, answer as never);
    second.request.resolver(null as never, answer as never);

    expect(first.settled.resolved).toEqual([answer]);
    expect(first.settled.cancelledInMux).toBeGreaterThan(0);
    // The no-op rejection after settling gets one shared reason, not an Error built each time.
    expect(first.settled.rejected).toHaveLength(1);
    expect(first.settled.rejected[0]).toBeInstanceOf(RequestError);
    expect(first.settled.rejected[0]).toBe(second.settled.rejected[0]);
  });

  it('nats requests - a failed request still rejects with its own error first, and a reason passed to cancel is kept', () => {
    cancelSettledRequestsWithoutStacks();
    const failed = request();
    const noResponders = new Error('503');
    failed.request.resolver(noResponders as never, {} as never);
    expect(failed.settled.rejected[0]).toBeInstanceOf(RequestError);
    expect((failed.settled.rejected[0] as RequestError).cause).toBe(noResponders);

    const publishFailed = request();
    const reason = new Error('publish failed');
    publishFailed.request.cancel(reason);
    expect(publishFailed.settled.rejected).toEqual([reason]);
  });

  it('nats requests - installing twice wraps cancel once', () => {
    cancelSettledRequestsWithoutStacks();
    const cancel = RequestOne.prototype.cancel;
    expect(cancelSettledRequestsWithoutStacks()).toBe(true);
    expect(RequestOne.prototype.cancel).toBe(cancel);
  });
});
