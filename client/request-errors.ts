/**
 * An error response that is not a problem body, e.g. a 502 page from a proxy in front of apostate.
 *
 * @example
 * if (error instanceof HttpError) console.log(error.status, error.body.slice(0, 200));
 */
export class HttpError extends Error {
  override readonly name = "HttpError";

  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`HTTP ${status}${body ? `: ${body.slice(0, 200)}` : ""}`);
  }
}

/**
 * A request that got no answer: every attempt failed on the network or timed out, or the
 * deadline ran out. For a mutation the outcome is unknown; sending it again with the same
 * `idempotencyKey` settles it without applying it twice.
 *
 * @example
 * const idempotencyKey = crypto.randomUUID();
 * try {
 *   await db.ops("account", "alice", body, { idempotencyKey });
 * } catch (error) {
 *   if (error instanceof NetworkError) await db.ops("account", "alice", body, { idempotencyKey });
 * }
 */
export class NetworkError extends Error {
  override readonly name = "NetworkError";

  constructor(
    message: string,
    readonly attempts: number,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}
