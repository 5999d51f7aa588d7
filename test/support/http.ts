import { request, type Agent, type IncomingHttpHeaders } from "node:http";

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export interface SendOptions {
  headers?: Record<string, string>;
  body?: string;
  /** Abort (and reject) after this long; a hung request must fail the test, not stall it. */
  timeoutMs?: number;
  /** A keep-alive agent for throughput; by default every request has a connection of its own. */
  agent?: Agent;
}

/**
 * One HTTP request, by default on a new connection. The cluster hands out connections
 * round-robin, so a sequence of these is spread over every worker instead of sticking to one
 * keep-alive socket.
 * Headers are sent exactly as given (fetch would refuse or rewrite some of the hostile ones).
 */
export function send(baseUrl: string, method: string, path: string, options: SendOptions = {}): Promise<Reply> {
  const url = new URL(path, baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: path,
        agent: options.agent ?? false,
        headers: {
          ...(options.body !== undefined && { "content-length": String(Buffer.byteLength(options.body)) }),
          ...options.headers,
        },
        timeout: options.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on("error", reject);
    req.end(options.body);
  });
}

/** The reply's body parsed as JSON; `undefined` when it is empty. */
export function bodyOf(reply: Reply): unknown {
  return reply.text === "" ? undefined : (JSON.parse(reply.text) as unknown);
}

/** A JSON body and its content type, for PUT, PATCH and `ops`. */
export function jsonRequest(value: unknown, contentType = "application/json"): SendOptions {
  return { headers: { "content-type": contentType }, body: JSON.stringify(value) };
}

/** The reply with its body parsed, in the shape supertest gives (for expectProblem). */
export function parsed(reply: Reply): Reply & { body: unknown } {
  return { ...reply, body: bodyOf(reply) };
}
