import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { ProblemError } from "./problems.js";

/** A parsed body and, when asked for, the SHA-256 (hex) of its bytes as sent. */
export interface JsonBody {
  body: unknown;
  digest: string | undefined;
}

/*
 * The rest of a body refused for its size is never read: the answer closes the connection, so
 * the unread bytes cannot be taken for the next request.
 */
const CLOSE = { headers: { Connection: "close" } };

/** Whether the request frames a body at all (RFC 9112, section 6.3). */
export function hasBodyFraming(req: IncomingMessage): boolean {
  return req.headers["transfer-encoding"] !== undefined || req.headers["content-length"] !== undefined;
}

/**
 * Reads a request's body as JSON, at most `limit` bytes. A declared length over the limit is
 * refused before anything is read, and a chunked body is cut off as soon as it passes the limit,
 * so an oversized body costs no more than `limit` bytes of memory and time.
 *
 * @example
 * const { body, digest } = await readJsonBody(req, { limit: 1_048_576, digest: true });
 */
export async function readJsonBody(req: IncomingMessage, options: { limit: number; digest: boolean }): Promise<JsonBody> {
  const hash = options.digest ? createHash("sha256") : undefined;
  const bytes = await readBytes(req, options.limit, (chunk) => hash?.update(chunk));
  if (bytes.length === 0) throw new ProblemError("invalid-body", "the request needs a body, and it has none");
  let body: unknown;
  try {
    body = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw new ProblemError("invalid-body", `the body is not valid JSON: ${(error as Error).message}`);
  }
  return { body, digest: hash?.digest("hex") };
}

/** Throws `unsupported-media-type` when a request to a route that takes no body carries one. */
export async function refuseBody(req: IncomingMessage, limit: number): Promise<void> {
  if (!hasBodyFraming(req)) return;
  const refused = () => new ProblemError("unsupported-media-type", `${req.method} takes no body`, CLOSE);
  if (Number(req.headers["content-length"] ?? 0) > 0) throw refused();
  // A chunked body may still turn out to be empty.
  if ((await readBytes(req, limit, () => undefined)).length > 0) throw refused();
}

function readBytes(req: IncomingMessage, limit: number, onChunk: (chunk: Buffer) => void): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(tooLarge(`the body's declared ${declared} bytes are over the limit of ${limit}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const finish = (error: ProblemError | undefined) => {
      req.off("data", onData).off("end", onEnd).off("error", onError).off("close", onClose);
      if (error) {
        req.pause();
        reject(error);
      } else resolve(Buffer.concat(chunks, received));
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) return finish(tooLarge(`the body is over the limit of ${limit} bytes`));
      onChunk(chunk);
      chunks.push(chunk);
    };
    const onEnd = () => finish(undefined);
    const onError = (error: Error) => finish(new ProblemError("invalid-body", `the body could not be read: ${error.message}`));
    const onClose = () => finish(new ProblemError("invalid-body", "the connection closed before the body was complete"));
    req.on("data", onData).on("end", onEnd).on("error", onError).on("close", onClose);
  });
}

function tooLarge(detail: string): ProblemError {
  return new ProblemError("payload-too-large", detail, CLOSE);
}
