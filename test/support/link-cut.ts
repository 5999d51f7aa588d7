import { once } from "node:events";
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";

/**
 * A TCP link to a server that a test can cut and heal, as a network partition would: while cut,
 * the connections it had are destroyed and new ones are accepted and then hear nothing, so a
 * caller waits for its own timeout, as it would on a dead route. When it heals, the connections
 * it swallowed are closed: on a real route they would never have been set up (their callers'
 * connects time out), and a caller that waits long (a seeding waits minutes for a copy) would
 * otherwise hang on one past the partition.
 *
 * @example
 * const link = await LinkCut.start(node.port); // node's peers reach it at link.url
 * link.cut(); … link.heal();
 */
export class LinkCut {
  private isCut = false;
  private readonly sockets = new Set<Socket>();
  /** Connections accepted while cut, which hear nothing. */
  private readonly swallowed = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    private readonly targetPort: number,
  ) {
    server.on("connection", (client: Socket) => this.accept(client));
  }

  static async start(targetPort: number, port = 0): Promise<LinkCut> {
    const server = createServer();
    server.listen(port, "127.0.0.1");
    await once(server, "listening");
    return new LinkCut(server, targetPort);
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  cut(): void {
    this.isCut = true;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  heal(): void {
    this.isCut = false;
    for (const socket of this.swallowed) socket.destroy();
    this.swallowed.clear();
  }

  async close(): Promise<void> {
    this.cut();
    this.server.close();
    await once(this.server, "close");
  }

  private accept(client: Socket): void {
    this.sockets.add(client);
    client.on("close", () => this.sockets.delete(client));
    client.on("error", () => client.destroy());
    // A cut link swallows what it is sent.
    if (this.isCut) {
      this.swallowed.add(client);
      client.on("close", () => this.swallowed.delete(client));
      return;
    }
    const upstream = connect(this.targetPort, "127.0.0.1");
    this.sockets.add(upstream);
    upstream.on("close", () => {
      this.sockets.delete(upstream);
      // As a refused connection would: closed once the caller has sent its request (undici waits
      // forever on a connection closed before it wrote anything).
      if (upstream.bytesWritten > 0 || upstream.bytesRead > 0) {
        client.destroy();
        return;
      }
      client.once("data", () => client.destroy());
      client.resume();
    });
    upstream.on("error", () => upstream.destroy());
    client.on("close", () => upstream.destroy());
    upstream.once("connect", () => {
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }
}
