import { once } from "node:events";
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { seededRandom } from "./client-helpers.js";

/** What the proxy does to one request. */
export type Fault = "none" | "unavailable" | "delay" | "drop-after-answer";

export interface FaultRates {
  /** Answer 503 `unavailable` without forwarding. */
  unavailable: number;
  /** Wait 1–`maxDelayMs` ms before forwarding. */
  delay: number;
  /** Forward, let the server answer in full, then cut the client's connection instead of answering. */
  dropAfterAnswer: number;
}

/**
 * A loopback HTTP proxy in front of a server that injects faults on a seeded schedule: the n-th
 * request it receives gets the n-th draw of the seed's random sequence. Which request is n-th
 * depends on timing under concurrency, but the mix and the delays come from the seed.
 */
export class FaultProxy {
  readonly counts: Record<Fault, number> = { none: 0, unavailable: 0, delay: 0, "drop-after-answer": 0 };
  private readonly random: () => number;

  private constructor(
    private readonly server: Server,
    private readonly target: URL,
    private readonly rates: FaultRates,
    private readonly maxDelayMs: number,
    seed: number,
  ) {
    this.random = seededRandom(seed);
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch(() => res.destroy());
    });
  }

  static async start(options: { target: string; seed: number; rates: FaultRates; maxDelayMs?: number }): Promise<FaultProxy> {
    const server = createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return new FaultProxy(server, new URL(options.target), options.rates, options.maxDelayMs ?? 50, options.seed);
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, "close");
  }

  private draw(): { fault: Fault; delayMs: number } {
    const roll = this.random();
    const delayMs = 1 + Math.floor(this.random() * this.maxDelayMs);
    const { unavailable, delay, dropAfterAnswer } = this.rates;
    if (roll < unavailable) return { fault: "unavailable", delayMs };
    if (roll < unavailable + delay) return { fault: "delay", delayMs };
    if (roll < unavailable + delay + dropAfterAnswer) return { fault: "drop-after-answer", delayMs };
    return { fault: "none", delayMs };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { fault, delayMs } = this.draw();
    this.counts[fault] += 1;
    const body = Buffer.concat(await req.toArray());
    if (fault === "unavailable") {
      res.writeHead(503, { "Content-Type": "application/problem+json", "Retry-After": "0" });
      res.end(
        JSON.stringify({ type: "urn:apostate:problem:unavailable", title: "Unavailable", status: 503, code: "unavailable" }),
      );
      return;
    }
    if (fault === "delay") await new Promise((resolve) => setTimeout(resolve, delayMs));
    const upstream = await this.forward(req, body);
    if (fault === "drop-after-answer") {
      req.socket.destroy();
      return;
    }
    res.writeHead(upstream.status, upstream.headers);
    res.end(upstream.body);
  }

  /** Sends the request on and reads the whole answer, so the server has finished with it. */
  private forward(
    req: IncomingMessage,
    body: Buffer,
  ): Promise<{ status: number; headers: Record<string, string | string[]>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const headers = { ...req.headers, host: this.target.host };
      const outgoing = httpRequest(
        { host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers },
        (answer) => {
          answer
            .toArray()
            .then((chunks: Buffer[]) => {
              const passed: Record<string, string | string[]> = {};
              for (const [name, value] of Object.entries(answer.headers)) {
                if (value !== undefined && name !== "connection" && name !== "keep-alive") passed[name] = value;
              }
              resolve({ status: answer.statusCode ?? 502, headers: passed, body: Buffer.concat(chunks) });
            })
            .catch(reject);
        },
      );
      outgoing.on("error", reject);
      outgoing.end(body);
    });
  }
}
