import { connect, type Socket } from "node:net";

/**
 * A hand-written HTTP exchange on a raw socket, for what no HTTP client will send: bodies that
 * stop half-way, lie about their length or trickle in byte by byte.
 */
export class RawConnection {
  private received = "";
  private readonly closed: Promise<void>;
  private isClosed = false;

  private constructor(private readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => (this.received += chunk.toString("latin1")));
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        this.isClosed = true;
        resolve();
      }),
    );
    socket.on("error", () => undefined);
  }

  static async open(baseUrl: string): Promise<RawConnection> {
    const { hostname, port } = new URL(baseUrl);
    const socket = connect(Number(port), hostname);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return new RawConnection(socket);
  }

  write(text: string): void {
    this.socket.write(text, "latin1");
  }

  /** Half-closes: the server sees the end of the request stream. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Everything the server sent until it closed the connection (or `timeoutMs` passed). */
  async response(timeoutMs = 10_000): Promise<string> {
    await Promise.race([this.closed, new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
    return this.received;
  }

  /** Whether the connection has closed (either side). */
  get hasClosed(): boolean {
    return this.isClosed;
  }

  /** What has arrived so far. */
  get text(): string {
    return this.received;
  }
}

/** The status code of the first response in `text`, or undefined when none arrived. */
export function statusOf(text: string): number | undefined {
  const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
  return match ? Number(match[1]) : undefined;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
