import { RequestError } from '@nats-io/nats-core';
import { RequestOne } from '@nats-io/nats-core/internal';

/**
 * The reason a settled request is cancelled with: nobody ever sees it (the request's promise
 * has already resolved or rejected), so one instance serves them all.
 */
const CANCELLED = new RequestError('cancelled');

let installed = false;

/**
 * Stops nats.js building an `Error`, stack trace included, after every request that was
 * answered. Its `RequestOne.resolver` settles the request and then calls `cancel()`, which
 * rejects the already-settled promise with a new `RequestError("cancelled")`: a no-op that
 * still captures a stack. That was ~15 µs of the ~55 µs a KV call costs a node in CPU
 * (nats.js 3.4, measured with `noAsyncTraces` set), and a login makes four of them. Cancel
 * still runs as before, given this one shared reason when its caller gives none; a reason
 * passed in (a failed publish) is kept.
 *
 * Process-wide and idempotent: it changes the class every connection in the process uses.
 * Returns false, changing nothing, if this version of nats.js lacks what it relies on.
 */
export function cancelSettledRequestsWithoutStacks(): boolean {
  if (installed) return true;
  const prototype = RequestOne?.prototype as { cancel?: unknown } | undefined;
  if (typeof prototype?.cancel !== 'function') return false;
  const cancel = prototype.cancel as (this: RequestOne, err?: Error) => void;
  prototype.cancel = function (this: RequestOne, err?: Error): void {
    cancel.call(this, err ?? CANCELLED);
  };
  installed = true;
  return true;
}
