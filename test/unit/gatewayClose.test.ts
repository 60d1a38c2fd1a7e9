import { once } from 'node:events';
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { PresenceNode } from '../../src/cluster/node.js';
import type { Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/log.js';

const gatewayOf = (node: PresenceNode) => (node as unknown as { gateway: Gateway }).gateway;

describe('gateway close', () => {
  let node: PresenceNode | undefined;
  afterEach(async () => {
    await node?.stop();
    node = undefined;
  });

  it('gateway close - resolves once every device socket has finished its close handshake', async () => {
    node = new PresenceNode({ host: '127.0.0.1', port: 0, log: createLogger({ level: 'silent' }) });
    const port = await node.start();
    const devices = Array.from({ length: 3 }, () => new WebSocket(`ws://127.0.0.1:${port}/ws`));
    await Promise.all(devices.map((device) => once(device, 'open')));
    const codes: number[] = [];
    for (const device of devices) device.on('close', (code: number) => codes.push(code));
    expect(gatewayOf(node).connectionCount).toBe(3);
    await gatewayOf(node).close();
    expect(gatewayOf(node).connectionCount).toBe(0);
    await Promise.all(devices.filter((device) => device.readyState !== WebSocket.CLOSED).map((device) => once(device, 'close')));
    expect(codes).toEqual([1001, 1001, 1001]);
  });
});
