import {
  Agent,
  request,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from "node:http";

/** RFC 9110 §7.6.1: headers that describe one connection, never passed on by an intermediary. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Methods that change nothing at the owner, so sending them twice is harmless. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** The owner could not be reached: nothing was sent, so the request had no effect and can be retried anywhere. */
export class OwnerUnreachableError extends Error {}

/**
 * The request reached the owner but its answer was lost: a write may or may not have been
 * applied, so only a retry with the same `Idempotency-Key` settles it.
 */
export class ForwardAnswerLostError extends Error {
  constructor(
    message: string,
    options: ErrorOptions,
    /** Sent on a pooled connection, which may have been stale rather than the owner gone. */
    readonly onPooledConnection: boolean,
  ) {
    super(message, options);
  }
}

/** What the forwarding node adds to the owner's answer. */
export interface ForwardStamp {
  /** The node that served the request (the owner). */
  servedBy: string;
  mapVersion: number;
}

/** The end-to-end headers of a message: everything but the hop-by-hop ones and those its `Connection` names. */
export function endToEndHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? "")
      .split(",")
      .map((name) => name.trim().toLowerCase())
      .filter((name) => name !== ""),
  );
  const kept: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name) && !named.has(name)) kept[name] = value;
  }
  return kept;
}

/**
 * Forwards requests to the node that owns their slot, in one hop, over a keep-alive pool per
 * node. The request is streamed as it arrives (its body is not read here first), and the
 * owner's answer is streamed back unchanged apart from hop-by-hop headers and the stamp.
 *
 * @example
 * const forwarder = new Forwarder({ timeoutMs: 10_000 });
 * await forwarder.forward(req, res, "http://10.0.0.2:8080", { servedBy: "node-b", mapVersion: 42 });
 */
export class Forwarder {
  private readonly agents = new Map<string, Agent>();

  constructor(private readonly options: { timeoutMs: number; maxSocketsPerNode?: number }) {}

  /**
   * Resolves once the owner's answer has been passed on. Rejects with
   * {@link OwnerUnreachableError} or {@link ForwardAnswerLostError} only while nothing has been
   * answered yet, so the caller can still answer with a problem; a failure after the answer
   * began cuts the client's connection, the only honest signal left.
   *
   * A read changes nothing, so losing one is never in doubt: it fails as unreachable, and when a
   * pooled connection failed under it (the owner closed it, or died, a moment before) it is sent
   * once more on a fresh connection first.
   */
  async forward(req: IncomingMessage, res: ServerResponse, ownerUrl: string, stamp: ForwardStamp): Promise<void> {
    const target = new URL(req.url ?? "/", ownerUrl);
    const pooled = this.agentFor(target.origin);
    if (!SAFE_METHODS.has(req.method ?? "")) return this.send(req, res, target, stamp, pooled);
    try {
      return await this.send(req, res, target, stamp, pooled).catch((error: unknown) => {
        if (error instanceof ForwardAnswerLostError && error.onPooledConnection) return this.send(req, res, target, stamp, false);
        throw error;
      });
    } catch (error) {
      throw error instanceof ForwardAnswerLostError ? new OwnerUnreachableError(error.message, { cause: error }) : error;
    }
  }

  private send(req: IncomingMessage, res: ServerResponse, target: URL, stamp: ForwardStamp, agent: Agent | false): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let sent = false;
      let pooled = false;
      const upstream = request(target, {
        method: req.method,
        headers: { ...endToEndHeaders(req.headers), host: target.host },
        agent,
        timeout: this.options.timeoutMs,
      });
      const fail = (error: Error) => {
        if (res.headersSent) {
          res.destroy(error);
          resolve();
          return;
        }
        if (!sent) {
          reject(
            new OwnerUnreachableError(`the owner at ${target.origin} cannot be reached: ${error.message}`, { cause: error }),
          );
          return;
        }
        reject(
          new ForwardAnswerLostError(`the owner at ${target.origin} did not answer: ${error.message}`, { cause: error }, pooled),
        );
      };
      upstream.on("socket", (socket) => {
        // A pooled socket is already connected; a new one counts as sent once it connects.
        pooled = !socket.connecting;
        if (pooled) sent = true;
        else socket.once("connect", () => (sent = true));
      });
      upstream.on("timeout", () => upstream.destroy(new Error(`no answer within ${this.options.timeoutMs} ms`)));
      upstream.on("error", fail);
      upstream.on("response", (answer) => {
        res.writeHead(answer.statusCode ?? 502, {
          ...endToEndHeaders(answer.headers),
          "apostate-served-by": stamp.servedBy,
          "apostate-map-version": String(stamp.mapVersion),
        });
        answer.on("error", fail);
        answer.pipe(res);
        answer.on("end", () => resolve());
      });
      req.on("error", (error) => upstream.destroy(error));
      req.pipe(upstream);
    });
  }

  /** Closes every pooled connection (at shutdown, or when a node leaves the cluster). */
  close(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  private agentFor(origin: string): Agent {
    let agent = this.agents.get(origin);
    if (!agent) {
      // An idle socket needs a timeout for Node to honour the owner's `Keep-Alive: timeout` hint
      // and drop it before the owner does, which is when a reused connection would fail.
      agent = new Agent({ keepAlive: true, timeout: this.options.timeoutMs, maxSockets: this.options.maxSocketsPerNode ?? 64 });
      this.agents.set(origin, agent);
    }
    return agent;
  }
}
