import type { Duplex } from 'node:stream';

/**
 * Answers an upgrade request that this node does not take with a bare HTTP status, then
 * closes the socket. Node has taken its own 'error' listener off the socket by the time it
 * emits 'upgrade': a client resetting the connection while the answer is written was an
 * unhandled 'error' that ended the process. No HTTP timeout applies to it any more either, so
 * the socket is destroyed once the answer is out instead of waiting for the client to close.
 */
export function refuseUpgrade(socket: Duplex, status: string): void {
  socket.on('error', () => socket.destroy());
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
}
