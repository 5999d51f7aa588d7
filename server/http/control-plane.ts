import type { RequestHandler, Response } from "express";
import type { ApiRequest } from "./api-request.js";
import type { ClusterRouter } from "./cluster-router.js";
import type { RequestValidator } from "./request-validator.js";
import { operationOf, type Operation } from "./route-table.js";

/** Answers one validated request of the routes express serves: admin, health, metrics. */
export type ControlHandler = (req: ApiRequest, res: Response) => void | Promise<void>;

/**
 * The routes besides `/v1`, as one express middleware: it validates the request against its
 * operation in openapi.yaml with the data plane's validator, then calls the operation's handler.
 * A request without a route goes on to express's next middleware (404). On a cluster node, a
 * request that names an entity (`locate`) another node owns is forwarded to that node, which
 * knows whether it exists.
 */
export function controlPlane(options: {
  handlers: ReadonlyMap<Operation, ControlHandler>;
  validator: RequestValidator;
  router?: ClusterRouter;
}): RequestHandler {
  const { handlers, validator, router } = options;
  return async (req, res, next) => {
    // The listener made every request an ApiRequest before express saw it.
    const request = req as unknown as ApiRequest;
    if (!request.match) return next();
    const owner = router?.ownerElsewhere(req, res, request.match);
    if (owner) return router?.forward(req, res, owner);
    const operation = operationOf(request.match.route, req.method);
    await validator.prepare(request, operation);
    // The route table bound a handler to every operation of these routes at start-up.
    await (handlers.get(operation) as ControlHandler)(request, res);
  };
}
