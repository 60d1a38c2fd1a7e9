/** Nobody serves the subject right now: during a shard move, the owner is between nodes. */
export class NoRespondersError extends Error {
  constructor(readonly subject: string, options?: ErrorOptions) {
    super(`no responders on '${subject}'`, options);
    this.name = 'NoRespondersError';
  }
}

/**
 * The requester's own connection is closed or closing: nobody was asked, so this says
 * nothing about who serves the subject (a retry fails the same way).
 */
export class TransportClosedError extends NoRespondersError {
  constructor(subject: string, options?: ErrorOptions) {
    super(subject, options);
    this.message = `not asked: the connection is closed (request on '${subject}')`;
    this.name = 'TransportClosedError';
  }
}

export class RequestTimeoutError extends Error {
  constructor(readonly subject: string, readonly timeoutMs: number, options?: ErrorOptions) {
    super(`request on '${subject}' timed out after ${timeoutMs} ms`, options);
    this.name = 'RequestTimeoutError';
  }
}

/** A compare-and-set lost: the key is not at the revision the writer expected. */
export class KvConflictError extends Error {
  constructor(readonly bucket: string, readonly key: string, readonly expectedRevision: number | 'absent', options?: ErrorOptions) {
    super(`kv ${bucket}/${key}: expected revision ${expectedRevision}, the key has moved on`, options);
    this.name = 'KvConflictError';
  }
}

/**
 * The bucket cannot be read or written right now: no stream leader (an election
 * after a server died takes seconds) or no connection. Worth retrying.
 */
export class KvUnavailableError extends Error {
  constructor(readonly bucket: string, readonly key: string, options?: ErrorOptions) {
    super(`kv ${bucket}/${key}: JetStream did not answer (no stream leader or no connection); retry later`, options);
    this.name = 'KvUnavailableError';
  }
}
