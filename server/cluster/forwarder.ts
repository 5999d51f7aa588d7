import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Client, Dispatcher, Pool } from "undici";
import type * as Undici from "undici";

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

/**
 * Request headers this hop answers for itself: `host` names the owner instead, and a
 * `100-continue` expectation was met by this node's server before the body was read.
 */
const ANSWERED_HERE = new Set(["host", "expect"]);

/** Methods that change nothing at the owner, so sending them twice is harmless. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * How many reads one connection to an owner carries at once (HTTP/1.1 pipelining). The reads
 * of one event-loop turn then share a connection and, corked, one `write` (about 3 a write
 * under the bench's load, by strace), and the owner flushes their answers together too: on
 * loopback each write runs the receiver's side of TCP too. In alternating rounds a forwarded
 * GET cost about a tenth less CPU (docs/performance.md). Only entity reads by key are
 * forwarded, all short, so one waiting behind another is no real delay; writes keep
 * connections of their own (undici would hold a write back until the reads before it are
 * answered, and a write is never pipelined).
 */
const READS_PER_CONNECTION = 8;

/**
 * Has every write of one event-loop turn on `socket` leave in one system call: the first write
 * corks the socket, which is uncorked once the turn's I/O callbacks have all run.
 */
function corkedPerTurn(socket: Socket): Socket {
  const write = socket.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = function (this: Socket, ...args: Parameters<Socket["write"]>): boolean {
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(uncork);
    }
    return write.apply(this, args);
  } as Socket["write"];
  return socket;
}

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

/** Which headers of a message are end-to-end: not the hop-by-hop ones, nor those its `Connection` names. */
function endToEnd(connection: string | string[] | undefined): (name: string) => boolean {
  const named = new Set(
    String(connection ?? "")
      .split(",")
      .map((name) => name.trim().toLowerCase()),
  );
  return (name) => !HOP_BY_HOP.has(name) && !named.has(name);
}

/** The end-to-end headers of a message, but for those `skip` names. */
export function endToEndHeaders(headers: IncomingHttpHeaders, skip?: (name: string) => boolean): OutgoingHttpHeaders {
  const passes = endToEnd(headers.connection);
  const kept: OutgoingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && passes(name) && !skip?.(name)) kept[name] = value;
  }
  return kept;
}

/**
 * The request's end-to-end headers as the client sent them (names, order and repeats kept),
 * with `own` in place of any the client sent under those names, as undici takes them.
 */
function forwardedHeaders(req: IncomingMessage, own: Readonly<Record<string, string>>): string[] {
  const passes = endToEnd(req.headers.connection);
  const raw = req.rawHeaders;
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (passes(name) && !ANSWERED_HERE.has(name) && !Object.hasOwn(own, name))
      headers.push(raw[i] as string, raw[i + 1] as string);
  }
  for (const [name, value] of Object.entries(own)) headers.push(name, value);
  return headers;
}

/** Whether a request carries a body (RFC 9112 §6.3): only then is it streamed on. */
function hasBody(req: IncomingMessage): boolean {
  return req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
}

/**
 * Forwards requests to the node that owns their slot, in one hop, over keep-alive pools per
 * node (undici's: in a bare proxy it cost about two thirds of node:http's client per GET, which
 * with node:http's server cost about as much as serving the request), one for reads, pipelined,
 * and one for the rest. The request is streamed as it arrives (its body is not read here
 * first), and the owner's answer is streamed back unchanged apart from hop-by-hop headers and
 * those this node has already set on its answer, which stay this node's.
 *
 * @example
 * const forwarder = await Forwarder.create({ timeoutMs: 10_000 });
 * await forwarder.forward(req, res, "http://10.0.0.2:8080", { "apostate-forwarded-by": "node-a" });
 */
export class Forwarder {
  /** Per owner, a pool for reads (pipelined) and one for everything else, by {@link poolKey}. */
  private readonly pools = new Map<string, Pool>();
  private readonly connect: Undici.buildConnector.connector;

  /** undici is loaded here, on a cluster node only: loading it took ~25 ms of every worker's start-up. */
  static async create(options: { timeoutMs: number; maxSocketsPerNode?: number }): Promise<Forwarder> {
    return new Forwarder(options, await import("undici"));
  }

  private constructor(
    private readonly options: { timeoutMs: number; maxSocketsPerNode?: number },
    private readonly undici: typeof Undici,
  ) {
    this.connect = undici.buildConnector({});
  }

  /**
   * Resolves once the owner's answer has been passed on. `headers` (lower-case names) are sent
   * in place of any the client sent under the same names. Rejects with
   * {@link OwnerUnreachableError} or {@link ForwardAnswerLostError} only while nothing has been
   * answered yet, so the caller can still answer with a problem; a failure after the answer
   * began cuts the client's connection, the only honest signal left.
   *
   * A read changes nothing, so losing one is never in doubt: it fails as unreachable, and when a
   * pooled connection failed under it (the owner closed it, or died, a moment before) it is sent
   * once more on a fresh connection first.
   */
  async forward(
    req: IncomingMessage,
    res: ServerResponse,
    ownerUrl: string,
    headers: Readonly<Record<string, string>>,
  ): Promise<void> {
    const method = req.method ?? "GET";
    const safe = SAFE_METHODS.has(method);
    const request: Dispatcher.DispatchOptions = {
      path: req.url ?? "/",
      method,
      headers: forwardedHeaders(req, headers),
      body: hasBody(req) ? req : null,
      // undici sends nothing behind a "blocking" request until its answer has begun: reads are short.
      blocking: !safe,
    };
    const key = poolKey(ownerUrl, safe);
    const pooled = this.send(this.poolFor(key, ownerUrl, safe), request, res, ownerUrl).catch((error: unknown) => {
      // A pool that failed a request is replaced, so that one in a bad state cannot fail every later one.
      this.replacePool(key);
      throw error;
    });
    if (!safe) return pooled;
    try {
      return await pooled.catch((error: unknown) => {
        if (!(error instanceof ForwardAnswerLostError && error.onPooledConnection)) throw error;
        const fresh = new this.undici.Client(ownerUrl, this.connectionOptions());
        return this.send(fresh, request, res, ownerUrl).finally(() => void fresh.close());
      });
    } catch (error) {
      throw error instanceof ForwardAnswerLostError ? new OwnerUnreachableError(error.message, { cause: error }) : error;
    }
  }

  private send(
    dispatcher: Dispatcher,
    request: Dispatcher.DispatchOptions,
    res: ServerResponse,
    ownerUrl: string,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let sent = false;
      dispatcher.dispatch(request, {
        onRequestStart: () => {
          // Called once the request is written to a connected socket.
          sent = true;
        },
        onResponseStart: (_controller, statusCode, answerHeaders) => {
          // What this node set on its answer before forwarding (its request id, its map version) stays.
          res.writeHead(
            statusCode,
            endToEndHeaders(answerHeaders, (name) => res.hasHeader(name)),
          );
        },
        onResponseData: (controller, chunk) => {
          // A client that went away takes nothing more: the rest of its answer is read and
          // dropped, so that the pooled connection stays fit for the next request.
          if (res.destroyed || res.write(chunk)) return;
          controller.pause();
          const resume = () => {
            res.off("drain", resume).off("close", resume);
            controller.resume();
          };
          res.once("drain", resume).once("close", resume);
        },
        onResponseEnd: () => {
          res.end();
          resolve();
        },
        onResponseError: (_controller, error) => {
          if (res.headersSent) {
            res.destroy(error);
            resolve();
          } else if (!sent) {
            reject(new OwnerUnreachableError(`the owner at ${ownerUrl} cannot be reached: ${error.message}`, { cause: error }));
          } else {
            reject(
              new ForwardAnswerLostError(
                `the owner at ${ownerUrl} did not answer: ${error.message}`,
                { cause: error },
                this.carriedAnAnswerBefore(error),
              ),
            );
          }
        },
      });
    });
  }

  /** Closes every pooled connection (at shutdown, or when a node leaves the cluster). */
  close(): void {
    for (const pool of this.pools.values()) void pool.destroy();
    this.pools.clear();
  }

  /** Lets a pool finish what it holds, and gives later requests a new one. */
  private replacePool(key: string): void {
    const pool = this.pools.get(key);
    this.pools.delete(key);
    void pool?.close().catch(() => undefined);
  }

  private poolFor(key: string, ownerUrl: string, reads: boolean): Pool {
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new this.undici.Pool(ownerUrl, {
        ...this.connectionOptions(),
        connections: this.options.maxSocketsPerNode ?? 64,
        ...(reads && {
          pipelining: READS_PER_CONNECTION,
          connect: (options, callback) =>
            this.connect(options, (error, socket) =>
              error ? callback(error, null) : callback(null, corkedPerTurn(socket as Socket)),
            ),
        }),
      });
      this.pools.set(key, pool);
    }
    return pool;
  }

  /**
   * No answer within the timeout fails the forward. An idle connection is closed before the
   * owner's `Keep-Alive: timeout` hint runs out (undici follows it), so the owner rarely closes
   * one as it is reused.
   */
  private connectionOptions(): Client.Options {
    const { timeoutMs } = this.options;
    return { connectTimeout: timeoutMs, headersTimeout: timeoutMs, bodyTimeout: timeoutMs };
  }

  /**
   * Whether the connection a request was lost on had carried an earlier answer (a pooled one,
   * which the owner may have closed just as it was reused): undici reports how much it had read.
   */
  private carriedAnAnswerBefore(error: Error): boolean {
    return error instanceof this.undici.errors.SocketError && (error.socket?.bytesRead ?? 0) > 0;
  }
}

function poolKey(ownerUrl: string, reads: boolean): string {
  return `${reads ? "reads" : "writes"} ${ownerUrl}`;
}
