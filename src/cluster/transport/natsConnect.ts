import { NatsConnectionImpl, setTransportFactory, type connect, type NatsConnection } from '@nats-io/transport-node';
// Not exported by the package's index; the version is pinned in package.json.
import { NodeTransport, nodeResolveHost } from '@nats-io/transport-node/lib/node_transport.js';

export type NatsConnectOptions = NonNullable<Parameters<typeof connect>[0]>;

/**
 * The node socket of nats.js, with its writes gathered per turn of the event loop.
 *
 * nats.js writes what it has to send at the end of each microtask checkpoint, and a
 * node sends from many of them in one turn (a request here, a KV write there, each
 * after its own await): one `write` system call, and one packet for the nats-server to
 * read, each. Corked until the turn's I/O callbacks are done (`setImmediate`), the socket
 * sends all of it in one `writev`: the nats-server's CPU in a 3-node burst storm halved.
 */
class TurnBatchingTransport extends NodeTransport {
  private corked = false;

  override send(frame: Uint8Array): void {
    const socket = this.socket as typeof this.socket | undefined;
    if (!this.corked && socket) {
      this.corked = true;
      socket.cork();
      setImmediate(() => {
        this.corked = false;
        socket.uncork();
      });
    }
    super.send(frame);
  }
}

/**
 * `connect` of `@nats-io/transport-node`, on the batching socket above. The transport
 * factory is global to nats.js and read again at every reconnect: nothing else in a
 * node's process connects with the stock `connect`, which would set its own.
 */
export function connectNats(options: NatsConnectOptions): Promise<NatsConnection> {
  setTransportFactory({ factory: () => new TurnBatchingTransport(), dnsResolveFn: nodeResolveHost });
  return NatsConnectionImpl.connect(options);
}
