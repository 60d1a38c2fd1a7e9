import { connect as tcpConnect } from 'node:net';

/** Whether something listens at the NATS URL's host and port. */
export function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url.split(',')[0]!);
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: hostname, port: Number(port || 4222) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
