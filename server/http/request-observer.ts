import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { HttpMetrics } from "../metrics/http-metrics.js";

/** The response header that carries the request's id (also taken from the request, if sane). */
export const REQUEST_ID_HEADER = "X-Request-Id";

/** An id a proxy in front may have assigned: short, and nothing that could forge a log line. */
const FORWARDED_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Answers passed back from the node that served the request, which logs and counts it under the same id. */
const passedOn = new WeakSet<ServerResponse>();

/**
 * Marks `res` as the answer of another node, passed back (true), before the request is sent
 * there, or as this node's own again (false) when it could not be: this node neither logs
 * nor counts a request twice over, nor misses one it answered itself.
 */
export function passesOnAnswer(res: ServerResponse, passes: boolean): void {
  if (passes) passedOn.add(res);
  else passedOn.delete(res);
}

/** Which finished requests get a log line (`--log-requests`). */
export const REQUEST_LOGGING = ["all", "slow"] as const;
export type RequestLogging = (typeof REQUEST_LOGGING)[number];

/**
 * A request that takes this long is logged even when only slow ones are: far above what any
 * single-entity request needs, so the line points at a stalled shard, a lock wait or a peer.
 */
export const SLOW_REQUEST_MS = 1_000;

/**
 * Gives each request an id (answered in `X-Request-Id`), and when its response is done records
 * it in the metrics and logs it: with `all`, every request as one JSON line; with `slow`, only
 * those that took {@link SLOW_REQUEST_MS} or more, or were cut off. A line names the method,
 * route, path, status and duration only: never a header (tokens) and never a body (entity data).
 */
export function observeRequests(options: {
  logger: Logger;
  metrics: HttpMetrics;
  logging: RequestLogging;
}): (req: IncomingMessage, res: ServerResponse, request: { path: string; route: string }) => void {
  const { logger, metrics, logging } = options;
  return (req, res, { path, route }) => {
    const method = req.method ?? "";
    const started = process.hrtime.bigint();
    const forwarded = req.headers["x-request-id"];
    const requestId = typeof forwarded === "string" && FORWARDED_ID.test(forwarded) ? forwarded : randomUUID();
    res.setHeader(REQUEST_ID_HEADER, requestId);
    res.once("close", () => {
      if (passedOn.has(res)) return;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const ms = Math.round(seconds * 1e6) / 1000;
      const entry = () => ({ reqId: requestId, method, route, path, status: res.statusCode, ms });
      // A response that was not finished was cut off: the client went away, or shutdown forced it.
      if (!res.writableFinished) logger.warn({ ...entry(), aborted: true }, "request aborted");
      else if (logging === "all") logger.info(entry(), "request");
      else if (ms >= SLOW_REQUEST_MS) logger.warn(entry(), "slow request");
      metrics.observe({
        method,
        route,
        status: res.statusCode,
        seconds,
        replayed: res.getHeader("Idempotent-Replayed") === "true",
      });
    });
  };
}
