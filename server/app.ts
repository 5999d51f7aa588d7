import express, { type Express } from "express";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { ShardAdmin } from "./admin/shard-admin.js";
import type { EntityStore } from "./entities/entity-store.js";
import { adminRoutes } from "./http/admin-routes.js";
import { bearerAuth } from "./http/auth.js";
import { entityRoutes } from "./http/entity-routes.js";
import { healthRoutes } from "./http/health-routes.js";
import { metricsRoute } from "./http/metrics-route.js";
import { jsonBody, openApiValidation } from "./http/openapi-validation.js";
import { problemMiddleware, routeNotFound } from "./http/problem-middleware.js";
import { observeRequests } from "./http/request-observer.js";
import { routeTemplates } from "./http/route-templates.js";
import { localMetrics, type MetricsSource } from "./ops/cluster-metrics.js";
import { HttpMetrics } from "./ops/http-metrics.js";
import { registerShardMetrics } from "./ops/shard-metrics.js";
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

/** The HTTP application, without `listen`, so tests can drive it directly. */
export function createApp(deps: AppDependencies): Express {
  const { store, shards, logger, bodyLimit, token, adminToken } = deps;
  const registry = deps.registry ?? new Registry();
  let metricsSource = deps.metricsSource;
  if (!metricsSource) {
    registerShardMetrics(registry, shards);
    metricsSource = localMetrics([registry]);
  }

  const app = express();
  app.disable("x-powered-by");
  // Entity responses carry their own strong ETag ("<version>"); express's body hash is not one.
  app.set("etag", false);

  // First, so that every response is logged and counted, refusals included.
  app.use(observeRequests({ logger, metrics: new HttpMetrics(registry), routeOf: routeTemplates() }));
  app.use(healthRoutes(shards, deps.isStopping ?? (() => false)));
  // Before any body is read: an unauthenticated request costs no parsing and changes nothing.
  app.use("/v1", bearerAuth(token));
  app.use(["/admin", "/metrics"], bearerAuth(adminToken));
  app.use(jsonBody(bodyLimit));
  app.use(openApiValidation());
  app.use(entityRoutes(store));
  app.use(adminRoutes(new ShardAdmin(shards)));
  app.use(metricsRoute(metricsSource));
  app.use(routeNotFound);
  app.use(problemMiddleware(logger));
  return app;
}
