import type { IncomingMessage, ServerResponse } from "node:http";
import type { ErrorRequestHandler, RequestHandler } from "express";
import type { Logger } from "pino";
import { toProblem } from "./problem-mapper.js";
import { ProblemError } from "./problems.js";
import { REQUEST_ID_HEADER } from "./request-observer.js";

/** Answers an error as a problem; `instance` is the request's URL. */
export type ProblemResponder = (error: unknown, req: IncomingMessage, res: ServerResponse, instance: string) => void;

const PROBLEM_CONTENT_TYPE = "application/problem+json; charset=utf-8";

/** Answers every error as a problem; details of unknown errors stay in the log. */
export function problemResponder(logger: Logger): ProblemResponder {
  return (error, _req, res, instance) => {
    const mapped = toProblem(error);
    const problem = mapped instanceof ProblemError ? mapped : new ProblemError("internal", "internal error", { cause: error });
    const reqId = res.getHeader(REQUEST_ID_HEADER);
    if (problem.code === "unavailable") {
      // Expected while a shard is busy, frozen for a move or its owner away: the reason, no stack.
      logger.warn({ reqId, url: instance, detail: problem.detail }, "request refused: unavailable");
    } else if (problem.status >= 500) {
      logger.error({ err: problem.options.cause ?? error, reqId, url: instance }, "request failed");
    }
    if (res.headersSent) return;
    const body = JSON.stringify(problem.toBody(instance));
    res.statusCode = problem.status;
    for (const [name, value] of Object.entries(problem.options.headers ?? {})) res.setHeader(name, value);
    res.setHeader("Content-Type", PROBLEM_CONTENT_TYPE);
    res.setHeader("Content-Length", Buffer.byteLength(body));
    res.end(body);
  };
}

/** {@link problemResponder} as express's last middleware. */
export function problemMiddleware(respond: ProblemResponder): ErrorRequestHandler {
  // Express recognises error middleware by its arity of 4, so `_next` stays.
  return (error: unknown, req, res, _next) => respond(error, req, res, req.originalUrl);
}

/** The last route: nothing matched. */
export const routeNotFound: RequestHandler = () => {
  throw new ProblemError("route-not-found", "no such route");
};
