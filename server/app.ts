import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import express from "express";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { ShardAdmin } from "./admin/shard-admin.js";
import type { EntityStore } from "./entities/entity-store.js";
import { adminRoutes } from "./http/admin-routes.js";
import { bearerAuth, bearerCheck } from "./http/auth.js";
import { dataPlane } from "./http/data-plane.js";
import { docsRoutes } from "./http/docs-routes.js";
import { entityHandlers } from "./http/entity-routes.js";
import { healthRoutes } from "./http/health-routes.js";
import { metricsRoute } from "./http/metrics-route.js";
import { jsonBody, OpenApi, pathOf, routeLabel } from "./http/openapi-validation.js";
import { problemMiddleware, problemResponder, routeNotFound } from "./http/problem-middleware.js";
import { observeRequests } from "./http/request-observer.js";
import { localMetrics, type MetricsSource } from "./metrics/cluster-metrics.js";
import { HttpMetrics } from "./metrics/http-metrics.js";
import { registerShardMetrics } from "./metrics/shard-metrics.js";
import type { ShardSet } from "./storage/data-directory.js";

export interface AppDependencies {
  store: EntityStore;
  /** The shards behind `store`, for the admin API, readiness and shard metrics. */
  shards: ShardSet;
  logger: Logger;
  bodyLimit: number;
  token: string | undefined;
  adminToken: string | undefined;
  /** Where this process's request metrics are kept; a new registry when absent. */
  registry?: Registry;
  /** What `/metrics` answers; when absent, `registry` plus gauges of `shards` (one process). */
  metricsSource?: MetricsSource;
  /** True once shutdown has begun: `/readyz` answers 503 from then on. */
  isStopping?: () => boolean;
}

/**
 * The HTTP application as node's request listener, without `listen`, so tests can drive it
 * directly. The data plane (`/v1/entities/…`) is served on node:http (http/data-plane.ts);
 * express serves the rest: health, admin, metrics and every unknown route.
 */
export async function createApp(deps: AppDependencies): Promise<RequestListener> {
  const { store, shards, logger, bodyLimit, token, adminToken } = deps;
  const registry = deps.registry ?? new Registry();
  let metricsSource = deps.metricsSource;
  if (!metricsSource) {
    registerShardMetrics(registry, shards);
    metricsSource = localMetrics([registry]);
  }
  const api = await OpenApi.load();
  const parseJson = jsonBody(bodyLimit);
  const respond = problemResponder(logger);
  const observe = observeRequests({ logger, metrics: new HttpMetrics(registry) });
  const data = dataPlane({ api, handlers: entityHandlers(store), checkToken: bearerCheck(token), jsonBody: parseJson, respond });

  const app = express();
  app.disable("x-powered-by");
  // Entity responses carry their own strong ETag ("<version>"); express's body hash is not one.
  app.set("etag", false);
  app.use(healthRoutes(shards, deps.isStopping ?? (() => false)));
  app.use(docsRoutes());
  // Before any body is read: an unauthenticated request costs no parsing and changes nothing.
  app.use("/v1", bearerAuth(token));
  app.use(["/admin", "/metrics"], bearerAuth(adminToken));
  app.use(parseJson);
  app.use(api.middleware());
  app.use(adminRoutes(new ShardAdmin(shards)));
  app.use(metricsRoute(metricsSource));
  app.use(routeNotFound);
  app.use(problemMiddleware(respond));

  return (req: IncomingMessage, res: ServerResponse) => {
    // Matched once, before any router rewrites req.url: the log line's label and the dispatch.
    const path = pathOf(req.url ?? "/");
    const route = api.find(path);
    // First, so that every response is logged and counted, refusals included.
    observe(req, res, { path, route: routeLabel(route) });
    if (route && data.serves(route)) data.serve(req, res, route, path);
    else app(req, res);
  };
}
