import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestHandler } from "express";
import type { TokenCheck } from "./auth.js";
import type { EntityHandler } from "./entity-routes.js";
import { toApiRequest, type ApiRequest, type ApiRoute, type OpenApi } from "./openapi-validation.js";
import type { ProblemResponder } from "./problem-middleware.js";

/**
 * Serves the routes of the `/v1` data plane on node:http directly, in front of express. Profiles
 * put express's own router, request and response prototypes at more CPU per request than all of
 * a read's other work (README, "Performance"), so the data plane runs the same steps as the
 * express stack in the same order, without express: token check, JSON body, validation against
 * openapi.yaml, handler, problem answer.
 */
export function dataPlane(options: {
  api: OpenApi;
  handlers: Record<string, EntityHandler>;
  checkToken: TokenCheck;
  jsonBody: RequestHandler;
  respond: ProblemResponder;
}): {
  /** Whether the route is the data plane's: every operation on its path has a handler. */
  serves: (route: ApiRoute) => boolean;
  serve: (req: IncomingMessage, res: ServerResponse, route: ApiRoute, path: string) => void;
} {
  const { api, handlers, checkToken, jsonBody, respond } = options;
  // The paths every operation of which has a handler; the rest stays with express.
  const served = new Set(
    api.routes.filter((route) =>
      [...route.operations.values()].every(
        (operation) => operation.operationId !== undefined && operation.operationId in handlers,
      ),
    ),
  );

  const readBody = (req: ApiRequest, res: ServerResponse) =>
    new Promise<void>((resolve, reject) =>
      // body-parser's middleware type is express's, but it reads only node's request.
      jsonBody(req as Parameters<RequestHandler>[0], res as Parameters<RequestHandler>[1], (error?: unknown) =>
        error === undefined ? resolve() : reject(error),
      ),
    );

  const handle = async (req: ApiRequest, res: ServerResponse, route: ApiRoute) => {
    checkToken(req, res);
    await readBody(req, res);
    const operationId = api.validate(req, res, route);
    const handler = operationId === undefined ? undefined : handlers[operationId];
    // `served` admits only paths whose every operation has a handler.
    if (!handler) throw new Error(`no handler for ${req.method} ${req.path}`);
    await handler(req, res);
  };

  return {
    serves: (route) => served.has(route),
    serve: (req, res, route, path) => {
      const apiRequest = toApiRequest(req, path);
      handle(apiRequest, res, route).catch((error: unknown) => respond(error, req, res, apiRequest.originalUrl));
    },
  };
}
