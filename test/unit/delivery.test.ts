import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pack, unpack } from 'msgpackr';
import { WebSocket, WebSocketServer } from 'ws';
import { describe, expect, it } from 'vitest';
import type { UserStatus } from '../../src/actors/types.js';
import { decode, encode, encodeBounded } from '../../src/cluster/codec.js';
import type { GatewayDelivery } from '../../src/cluster/commands.js';
import { DeliveryBatcher, halvesOf } from '../../src/cluster/delivery.js';
import { StatusBatcher } from '../../src/cluster/statusBatcher.js';
import { subjects } from '../../src/cluster/subjects.js';
import { EmbeddedTransport } from '../../src/cluster/transport/embedded.js';
import { Connection, encodeForWire, wireFrame } from '../../src/gateway/connection.js';
import { DeviceSocket } from '../../src/gateway/deviceSocket.js';
import { Outbox, pushFrame } from '../../src/gateway/outbox.js';

const status = (userID: string, version: number): UserStatus =>
  ({ userID, statusType: 1, customStatus: `v${version}`, version, lastSeenAt: 0 }) as unknown as UserStatus;

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A connection whose socket records the bytes written to it. */
function recordingConnection(connId: string, outbox: Outbox) {
  const frames: Uint8Array[] = [];
  const socket = { readyState: WebSocket.OPEN };
  const connection = new Connection(connId, socket as unknown as DeviceSocket, { write: (bytes: Uint8Array) => frames.push(bytes) }, outbox);
  return { connection, frames };
}

/**
 * A device connected over a real socket to a server whose sockets are the gateway's
 * `DeviceSocket`s, its `Connection` on `outbox`; `onMessage` runs for each frame it sends.
 */
async function deviceSocketPair(outbox: Outbox, onMessage: (connection: Connection) => void = () => undefined) {
  const wss = new WebSocketServer({ noServer: true, clientTracking: false, WebSocket: DeviceSocket });
  const server = createServer();
  const accepted = new Promise<Connection>((resolve) =>
    server.on('upgrade', (request, socket, head) =>
      wss.handleUpgrade(request, socket, head, (ws) => {
        const connection = new Connection('c1', ws, socket, outbox);
        ws.on('message', () => onMessage(connection));
        resolve(connection);
      }),
    ),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  const received: unknown[] = [];
  client.on('message', (data: Buffer) => received.push(unpack(data)));
  const [connection] = await Promise.all([accepted, once(client, 'open')]);
  return { connection, client, received, server };
}

/** The msgpack payloads of the binary WebSocket frames (each under 64 KiB) in one write. */
const payloadsOf = (write: Uint8Array) => {
  const payloads: unknown[] = [];
  for (let at = 0; at < write.length; ) {
    expect(write[at]).toBe(0x82);
    const extended = write[at + 1] === 126;
    const start = at + (extended ? 4 : 2);
    const length = extended ? Buffer.from(write).readUInt16BE(at + 2) : write[at + 1]!;
    payloads.push(unpack(write.subarray(start, start + length)));
    at = start + length;
  }
  return payloads;
};

/** The msgpack payload of a binary WebSocket frame under 64 KiB (wsFrame.test.ts checks the framing). */
const payloadOf = (frame: Uint8Array) => {
  expect(frame[0]).toBe(0x82);
  return unpack(frame.subarray(frame[1] === 126 ? 4 : 2));
};

/** An in-process transport that records its publishes and the calls that write them at once, in order. */
class RecordingTransport extends EmbeddedTransport {
  readonly calls: string[] = [];

  override publish(subject: string, data: Uint8Array): void {
    this.calls.push(`publish ${subject}`);
    super.publish(subject, data);
  }

  writePending(): void {
    this.calls.push('writePending');
  }
}

describe('delivery', () => {
  it('delivery - the tick batches, which run at a tick\'s end, have the transport write their messages then, not a tick later', async () => {
    const transport = new RecordingTransport();
    const delivery = new DeliveryBatcher(transport);
    delivery.push('gw-far', 'c1', status('u1', 1));
    const statuses = new StatusBatcher(transport);
    statuses.announce(7, status('u1', 1));
    expect(transport.calls).toEqual([]);
    await nextTick();
    expect(transport.calls).toEqual([`publish ${subjects.gatewayOut('gw-far')}`, 'writePending', `publish ${subjects.statusChanges(7)}`, 'writePending']);
  });

  it('delivery - a status fanned out to 50 connections of a gateway is in its message once', async () => {
    const transport = new EmbeddedTransport();
    const messages: GatewayDelivery[] = [];
    transport.subscribe(subjects.gatewayOut('gw-1'), (data) => messages.push(decode<GatewayDelivery>(data)));
    const batcher = new DeliveryBatcher(transport);
    const change = status('alice', 7);
    const other = status('bob', 3);
    for (let i = 0; i < 50; i++) batcher.push('gw-1', `c${i}`, change);
    batcher.push('gw-1', 'c0', other);
    batcher.flush();
    await nextTick();
    expect(messages).toHaveLength(1);
    const [message] = messages;
    expect(message!.statuses).toEqual([change, other]);
    expect(message!.pushes).toHaveLength(50);
    expect(new Map(message!.pushes)).toEqual(new Map([['c0', [0, 1]], ...Array.from({ length: 49 }, (_, i) => [`c${i + 1}`, [0]] as [string, number[]])]));
    await transport.close();
  });

  it('delivery - what is due to the node\'s own gateway is handed over in process, the rest is published, until the gateway disconnects', async () => {
    const transport = new EmbeddedTransport();
    const published: string[] = [];
    transport.subscribe(subjects.gatewayOut('*'), (_data, subject) => published.push(subject));
    const batcher = new DeliveryBatcher(transport);
    const local: GatewayDelivery[] = [];
    const connection = batcher.connectLocal('gw-own', (message) => local.push(message));
    const change = status('alice', 7);
    batcher.push('gw-own', 'c1', change);
    batcher.push('gw-own', 'c2', change);
    batcher.kick('gw-own', 'c3', 6206);
    batcher.push('gw-other', 'c9', change);
    batcher.flush();
    await nextTick();
    expect(local).toEqual([{ statuses: [change], pushes: [['c1', [0]], ['c2', [0]]], kicks: [['c3', 6206]] }]);
    // The very object: nothing was encoded on the way.
    expect(local[0]!.statuses![0]).toBe(change);
    expect(published).toEqual([subjects.gatewayOut('gw-other')]);

    connection.unsubscribe();
    batcher.push('gw-own', 'c1', status('alice', 8));
    batcher.flush();
    await nextTick();
    expect(local).toHaveLength(1);
    expect(published).toEqual([subjects.gatewayOut('gw-other'), subjects.gatewayOut('gw-own')]);
    await transport.close();
  });

  it('delivery - each socket gets one frame per tick; sockets getting only the same status share its encoded bytes', async () => {
    const queue = new Outbox();
    const a = recordingConnection('a', queue);
    const b = recordingConnection('b', queue);
    const c = recordingConnection('c', queue);
    const change = status('alice', 7);
    const later = status('bob', 2);
    queue.push(a.connection, change);
    queue.push(b.connection, change);
    queue.push(c.connection, change);
    queue.push(c.connection, later);
    expect(a.frames).toEqual([]); // sent when the tick ends
    await nextTick();
    expect([a.frames.length, b.frames.length, c.frames.length]).toEqual([1, 1, 1]);
    expect(a.frames[0]).toBe(b.frames[0]);
    expect(payloadOf(a.frames[0]!)).toEqual({ t: 'push', list: [change] });
    expect(payloadOf(c.frames[0]!)).toEqual({ t: 'push', list: [change, later] });
  });

  // 15 and 16: the last fixarray and the first array 16; 70 000: an array 32.
  it.each([1, 15, 16, 300, 70_000])('delivery - a push frame of %i statuses assembled from their encodings is the bytes of the whole frame encoded', (count) => {
    const list = Array.from({ length: count }, (_, i) => status(`u${i}`, i + 1));
    expect(pushFrame(list.map(encodeForWire)).equals(wireFrame({ t: 'push', list }))).toBe(true);
  });

  it('delivery - a socket closed before the tick ends is sent nothing', async () => {
    const queue = new Outbox();
    const a = recordingConnection('a', queue);
    queue.push(a.connection, status('alice', 1));
    a.connection.send({ t: 'hb' });
    a.connection.markClosed();
    await nextTick();
    expect(a.frames).toEqual([]);
  });

  it('delivery - a socket\'s answers and pushes of one tick leave in one write: the frames in order, then one push frame', async () => {
    const outbox = new Outbox();
    const a = recordingConnection('a', outbox);
    const change = status('alice', 7);
    const later = status('bob', 2);
    outbox.push(a.connection, change);
    a.connection.send({ t: 'res', id: 1, ok: true, result: {} });
    outbox.push(a.connection, later);
    a.connection.send({ t: 'hb' });
    expect(a.frames).toEqual([]);
    await nextTick();
    expect(a.frames).toHaveLength(1);
    expect(payloadsOf(a.frames[0]!)).toEqual([{ t: 'res', id: 1, ok: true, result: {} }, { t: 'hb' }, { t: 'push', list: [change, later] }]);
  });

  it('delivery - frames written at once before a close leave the tick\'s batch: the tick\'s end writes them no second time', async () => {
    const outbox = new Outbox();
    const a = recordingConnection('a', outbox);
    const b = recordingConnection('b', outbox);
    a.connection.send({ t: 'hb' });
    b.connection.send({ t: 'hb' });
    // What DeviceSocket.close does before ws writes its close frame (the socket stays open here,
    // so a frame left in the batch would be written again when the tick ends).
    a.connection.writeQueuedFrames();
    expect(a.frames.map(payloadOf)).toEqual([{ t: 'hb' }]);
    await nextTick();
    expect(a.frames).toHaveLength(1);
    expect(b.frames.map(payloadOf)).toEqual([{ t: 'hb' }]);
  });

  it('delivery - a socket closed by the server gets its queued frames before the close frame, and no queued push', async () => {
    const outbox = new Outbox();
    const { connection, client, received, server } = await deviceSocketPair(outbox);
    outbox.push(connection, status('alice', 1));
    connection.send({ t: 'kicked', error: { code: 6206, desc: 'kicked' } });
    connection.closeWith(4001, 'kicked');
    const [code] = (await once(client, 'close')) as [number];
    server.close();
    expect(code).toBe(4001);
    expect(received).toEqual([{ t: 'kicked', error: { code: 6206, desc: 'kicked' } }]);
  });

  it('delivery - a close the device starts still gets the frames queued in that tick first', async () => {
    const outbox = new Outbox();
    const { client, received, server } = await deviceSocketPair(outbox, (connection) => connection.send({ t: 'hb' }));
    // The heartbeat and the close frame reach the server in one read: ws answers the close at once.
    const socket = (client as unknown as { _socket: Socket })._socket;
    socket.cork();
    client.send(pack({ t: 'hb' }));
    client.close(1000);
    socket.uncork();
    const [code] = (await once(client, 'close')) as [number];
    server.close();
    expect(code).toBe(1000);
    expect(received).toEqual([{ t: 'hb' }]);
  });

  it('delivery - a gateway message too large for one publish is split into parts that keep every connection\'s order, kicks last', () => {
    const changes = Array.from({ length: 120 }, (_, i) => status(`u${i}`, i + 1));
    const message: GatewayDelivery = {
      statuses: changes,
      pushes: Array.from({ length: 40 }, (_, c): [string, number[]] => [`c${c}`, [3 * c, 3 * c + 1, 3 * c + 2]]),
      kicks: [['c7', 6206]],
    };
    const whole = encode(message).length;
    const parts = encodeBounded(message, halvesOf, Math.floor(whole / 5)).map((bytes) => decode<GatewayDelivery>(bytes));
    expect(parts.length).toBeGreaterThan(4);
    for (const part of parts) expect(encode(part).length).toBeLessThanOrEqual(Math.floor(whole / 5));
    const received = new Map<string, number[]>();
    for (const part of parts) {
      for (const [connId, indexes] of part.pushes ?? []) {
        received.set(connId, [...(received.get(connId) ?? []), ...indexes.map((i) => part.statuses![i]!.version)]);
      }
    }
    expect(received).toEqual(new Map(Array.from({ length: 40 }, (_, c) => [`c${c}`, [3 * c + 1, 3 * c + 2, 3 * c + 3]] as [string, number[]])));
    expect(parts.map((p) => p.kicks ?? [])).toEqual([...parts.slice(1).map(() => []), [['c7', 6206]]]);
  });

  it('delivery - one connection\'s statuses too many for one message are split across parts, in order', () => {
    const changes = Array.from({ length: 10 }, (_, i) => status('alice', i + 1));
    const message: GatewayDelivery = { statuses: changes, pushes: [['c1', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]] };
    const parts = encodeBounded(message, halvesOf, 200).map((bytes) => decode<GatewayDelivery>(bytes));
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.map((p) => p.pushes!.map(([connId]) => connId))).toEqual(parts.map(() => ['c1']));
    expect(parts.flatMap((p) => p.pushes![0]![1].map((i) => p.statuses![i]!.version))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('delivery - a message within the bound is encoded once, as it is', () => {
    const message: GatewayDelivery = { statuses: [status('alice', 1)], pushes: [['c1', [0]]], kicks: [['c2', 6206]] };
    expect(encodeBounded(message, halvesOf)).toEqual([encode(message)]);
  });
});
