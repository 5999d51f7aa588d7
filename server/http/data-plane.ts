import type { IncomingMessage, ServerResponse } from "node:http";
import { toApiRequest } from "./api-request.js";
import type { TokenCheck } from "./auth.js";
import type { ClusterRouter } from "./cluster-router.js";
import type { EntityHandler } from "./entity-routes.js";
import type { ProblemResponder } from "./problem-middleware.js";
import type { RequestValidator } from "./request-validator.js";
import { operationOf, type ApiRoute, type Operation, type RouteMatch } from "./route-table.js";

/** The routes the data plane serves: those of `/v1`. */
export function isDataPlaneRoute(route: ApiRoute): boolean {
  return route.template.startsWith("/v1/");
}

/**
 * Serves the routes of the `/v1` data plane on node:http directly, in front of express. Profiles
 * put express's own router, request and response prototypes at more CPU per request than all of
 * a read's other work (README, "Performance"), so the data plane runs the same steps as the
 * express stack in the same order, without express: token check, validation against
 * openapi.yaml (the body read on the way), handler, problem answer.
 */
export function dataPlane(options: {
  handlers: ReadonlyMap<Operation, EntityHandler>;
  validator: RequestValidator;
  checkToken: TokenCheck;
  respond: ProblemResponder;
  /** On a cluster node: forwards requests for entities another node owns. */
  router?: ClusterRouter;
}): (req: IncomingMessage, res: ServerResponse, match: RouteMatch, path: string) => void {
  const { handlers, validator, checkToken, respond, router } = options;

  const handle = async (req: IncomingMessage, res: ServerResponse, match: RouteMatch, path: string) => {
    checkToken(req, res);
    const operation = operationOf(match.route, req.method);
    const owner = router?.ownerElsewhere(req, res, match);
    if (owner) return router?.forward(req, res, owner);
    const request = toApiRequest(req, path, match);
    await validator.prepare(request, operation);
    // The route table bound a handler to every operation of the data plane's routes at start-up.
    const handler = handlers.get(operation) as EntityHandler;
    await handler(request, res);
  };

  return (req, res, match, path) => {
    handle(req, res, match, path).catch((error: unknown) => respond(error, req, res, req.url ?? "/"));
  };
}
