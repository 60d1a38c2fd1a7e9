import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { refuseUpgrade } from '../../src/gateway/refuseUpgrade.js';

let server: Server | undefined;

afterEach(() => server?.close());

/** A server that refuses every connection as an unwanted upgrade; resolves with its port and its sockets' closes. */
async function refusing(): Promise<{ port: number; closed: Promise<void> }> {
  let closed!: () => void;
  const done = new Promise<void>((resolve) => (closed = resolve));
  server = createServer((socket) => {
    socket.on('close', () => closed());
    refuseUpgrade(socket, '404 Not Found');
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return { port: address.port, closed: done };
}

describe('refuseUpgrade', () => {
  it('refuseUpgrade - a client that resets the connection while the answer is written costs nothing but its socket', async () => {
    const { port, closed } = await refusing();
    const client = connect(port, '127.0.0.1', () => client.resetAndDestroy());
    client.on('error', () => undefined);
    // Without the listener, the server socket's ECONNRESET is an uncaught error and fails this run.
    await closed;
  });

  it('refuseUpgrade - the server closes the socket after its answer, without waiting for the client', async () => {
    const { port, closed } = await refusing();
    let answer = '';
    // A client that never closes its side: the server's end alone must not leave the socket open.
    const client: Socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    client.on('data', (chunk) => (answer += chunk.toString('latin1')));
    const clientEnded = new Promise<void>((resolve) => client.on('end', () => resolve()));
    await closed;
    await clientEnded;
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 404 Not Found');
    client.destroy();
  });
});
