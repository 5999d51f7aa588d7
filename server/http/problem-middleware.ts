import type { ErrorRequestHandler, RequestHandler } from "express";
import type { Logger } from "pino";
import { toProblem } from "./problem-mapper.js";
import { ProblemError } from "./problems.js";
import { REQUEST_ID_HEADER } from "./request-observer.js";

/** Registered last: answers every error as a problem; details of unknown errors stay in the log. */
export function problemMiddleware(logger: Logger): ErrorRequestHandler {
  // Express recognises error middleware by its arity of 4, so `_next` stays.
  return (error: unknown, req, res, _next) => {
    const mapped = toProblem(error);
    const problem = mapped instanceof ProblemError ? mapped : new ProblemError("internal", "internal error", { cause: error });
    if (problem.status >= 500) {
      const reqId = res.getHeader(REQUEST_ID_HEADER);
      logger.error({ err: problem.options.cause ?? error, reqId, url: req.originalUrl }, "request failed");
    }
    if (res.headersSent) return;
    res.status(problem.status);
    for (const [name, value] of Object.entries(problem.options.headers ?? {})) res.setHeader(name, value);
    res.type("application/problem+json").send(JSON.stringify(problem.toBody(req.originalUrl)));
  };
}

/** The last route: nothing matched. */
export const routeNotFound: RequestHandler = () => {
  throw new ProblemError("route-not-found", "no such route");
};
