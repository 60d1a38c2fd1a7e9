import type { NatsConnection } from '@nats-io/transport-node';

/** The part of nats.js's protocol handler (`@nats-io/nats-core`, `ProtocolHandler`) this module relies on. */
interface ProtocolHandler {
  outbound: { fill(data: Uint8Array, ...more: Uint8Array[]): void; size(): number };
  pendingLimit: number;
  flushPending(): void;
  sendCommand(command: string | Uint8Array, ...payloads: Uint8Array[]): void;
}

const encoder = new TextEncoder();

function protocolOf(nc: NatsConnection): ProtocolHandler | undefined {
  const protocol = (nc as unknown as { protocol?: Partial<ProtocolHandler> }).protocol;
  const usable =
    typeof protocol?.sendCommand === 'function' &&
    typeof protocol.flushPending === 'function' &&
    typeof protocol.outbound?.fill === 'function' &&
    typeof protocol.outbound.size === 'function' &&
    typeof protocol.pendingLimit === 'number';
  return usable ? (protocol as ProtocolHandler) : undefined;
}

/** Writes what a connection holds now, for a sender that itself runs at the end of a turn. */
export interface HeldWrites {
  writeNow(): void;
}

/**
 * Makes `nc` write what it has to send once per turn of the event loop, not once per
 * microtask checkpoint. nats.js writes its outbound buffer at the first checkpoint after
 * a command, and a node passes one after every message it handles (a device's frame, a
 * NATS message, a KV answer): in a 3-node burst that was about three socket writes per
 * status change on each node, each waking the nats-server. Held until the event loop's
 * I/O phase ends (`setImmediate`), everything the messages read in one turn produced
 * leaves in one write, later by nothing but the rest of that turn's work. A sender that
 * runs at the end of a turn itself (a tick batch) calls `writeNow` after it: a write it
 * scheduled then would wait for the next turn. The buffer is still written at once when
 * it reaches nats.js's own limit (32 KiB), and a `flush()` (a PING) writes it as before.
 *
 * Returns undefined, changing nothing, if this version of nats.js lacks what it relies on.
 */
export function writeOncePerTurn(nc: NatsConnection): HeldWrites | undefined {
  const protocol = protocolOf(nc);
  if (!protocol) return undefined;
  let scheduled = false;
  const writePending = () => {
    scheduled = false;
    protocol.flushPending();
  };
  protocol.sendCommand = (command, ...payloads) => {
    protocol.outbound.fill(typeof command === 'string' ? encoder.encode(command) : command, ...payloads);
    if (!scheduled) {
      scheduled = true;
      setImmediate(writePending);
    } else if (protocol.outbound.size() >= protocol.pendingLimit) {
      protocol.flushPending();
    }
  };
  return { writeNow: () => protocol.flushPending() };
}
