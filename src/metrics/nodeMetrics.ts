import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the gauges read when Prometheus scrapes: current figures of the running node. */
export interface NodeFigures {
  connections(): number;
  residentActors(): number;
  onlineUsers(): number;
  shardsOwned(): number;
  /** Totals since start, read at scrape time into counters. */
  natsReconnects(): number;
  leaseRenewals(): number;
  shardsFenced(): number;
  shardsPreempted(): number;
  webhooksPending(): number;
}

/**
 * The node's Prometheus metrics, on a registry of its own (several nodes may share a
 * process in tests). Counters are incremented where things happen; gauges read
 * {@link NodeFigures} at scrape time, so the hot path pays nothing for them.
 */
export class NodeMetrics {
  readonly registry = new Registry();
  readonly logins: Counter<'result'>;
  readonly requests: Counter<'op' | 'code'>;
  readonly rateLimited: Counter<'op'>;
  readonly notifications: Counter;
  readonly fanoutLatency: Histogram;
  readonly webhookDeliveries: Counter<'result'>;
  readonly webhookOverflow: Counter;

  constructor(figures: NodeFigures, labels: { node: string }) {
    const registers = [this.registry];
    this.registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: this.registry, prefix: 'presence_' });
    this.logins = new Counter({ name: 'presence_logins_total', help: 'Device logins, by result (ok or the error code).', labelNames: ['result'], registers });
    this.requests = new Counter({
      name: 'presence_requests_total',
      help: 'Device calls answered, by operation and code (0 for success).',
      labelNames: ['op', 'code'],
      registers,
    });
    this.rateLimited = new Counter({ name: 'presence_rate_limit_refusals_total', help: 'Calls refused by a per-user rate window (20 per 5 s by default).', labelNames: ['op'], registers });
    this.notifications = new Counter({ name: 'presence_notifications_delivered_total', help: 'Status changes written to device sockets.', registers });
    this.fanoutLatency = new Histogram({
      name: 'presence_fanout_latency_seconds',
      help: "From the owner's announce of a status change (after its write; its message leaves at the end of that tick) to its dispatch to watchers on this node.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.webhookDeliveries = new Counter({
      name: 'presence_webhook_attempts_total',
      help: 'Webhook POSTs, by result: ok (a 2xx) or failed (retried with backoff).',
      labelNames: ['result'],
      registers,
    });
    this.webhookOverflow = new Counter({
      name: 'presence_webhook_dropped_total',
      help: "Webhook events given up because a user's outbox was full (the receiver was failing for long).",
      registers,
    });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    gauge('presence_connections', 'Open device WebSockets on this node.', figures.connections);
    gauge('presence_resident_actors', 'User actors running on this node.', figures.residentActors);
    gauge('presence_online_users', 'Resident users with a device connected.', figures.onlineUsers);
    gauge('presence_shards_owned', 'Shards this node owns (of 1024).', figures.shardsOwned);
    gauge('presence_webhook_pending_events', 'Webhook events waiting in the outboxes of the actors on this node.', figures.webhooksPending);
    /** A counter fed at scrape time from totals kept by the component itself (one per label value). */
    const totals = (name: string, help: string, readers: Array<[Record<string, string>, () => number]>) => {
      const seen = readers.map(() => 0);
      new Counter({
        name,
        help,
        labelNames: [...new Set(readers.flatMap(([labels]) => Object.keys(labels)))],
        registers,
        collect() {
          readers.forEach(([labels, read], i) => {
            const now = read();
            if (now > seen[i]!) this.inc(labels, now - seen[i]!);
            seen[i] = now;
          });
        },
      });
    };
    totals('presence_nats_reconnects_total', 'Reconnections of this node to NATS.', [[{}, figures.natsReconnects]]);
    totals('presence_lease_renewals_total', 'Membership heartbeats that came back to this node: its lease renewed.', [[{}, figures.leaseRenewals]]);
    totals(
      'presence_lease_losses_total',
      'Shards this node stopped serving without handing them over: fenced (its lease lapsed) or preempted (another node claimed them).',
      [
        [{ reason: 'fenced' }, figures.shardsFenced],
        [{ reason: 'preempted' }, figures.shardsPreempted],
      ],
    );
  }

  /** The text exposition format, for GET /metrics. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
