import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import express from "express";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { SLOT_COUNT } from "../schema/placement.js";
import { ShardAdmin } from "./admin/shard-admin.js";
import type { ClusterState } from "./cluster/cluster-state.js";
import { Forwarder } from "./cluster/forwarder.js";
import { ShardTransfer } from "./cluster/shard-transfer.js";
import type { TopologyAnswer } from "./cluster/topology.js";
import { ClusterRouter } from "./http/cluster-router.js";
import { clusterHandlers, type ClusterOperations } from "./http/cluster-routes.js";
import type { EntityStore } from "./entities/entity-store.js";
import { adminHandlers } from "./http/admin-routes.js";
import { toApiRequest } from "./http/api-request.js";
import { bearerAuth, bearerCheck } from "./http/auth.js";
import { controlPlane } from "./http/control-plane.js";
import { dataPlane, isDataPlaneRoute } from "./http/data-plane.js";
import { docsHandlers } from "./http/docs-routes.js";
import { loadOpenApiDocument } from "./http/openapi-document.js";
import { entityHandlers } from "./http/entity-routes.js";
import { healthHandlers } from "./http/health-routes.js";
import { metricsHandlers } from "./http/metrics-route.js";
import { problemMiddleware, problemResponder, routeNotFound } from "./http/problem-middleware.js";
import { observeRequests, type RequestLogging } from "./http/request-observer.js";
import { RequestValidator } from "./http/request-validator.js";
import { pathOf, routeLabel, RouteTable } from "./http/route-table.js";
import { uiHandlers } from "./http/ui-routes.js";
import { localMetrics, type MetricsSource } from "./metrics/cluster-metrics.js";
import { HttpMetrics } from "./metrics/http-metrics.js";
import { registerShardMetrics } from "./metrics/shard-metrics.js";
import type { ShardSet } from "./storage/data-directory.js";

/** How long a forwarded request may wait for the owner's answer. */
const FORWARD_TIMEOUT_MS = 30_000;

/** A server on its own, as `/v1/topology` describes it: version 0, every shard at the address the client already uses. */
function singleNodeTopology(shards: ShardSet): TopologyAnswer {
  return {
    version: 0,
    slots: SLOT_COUNT,
    shards: shards.shards.map(({ placement }) => ({
      shard: placement.shard,
      slots: { ...placement.slots },
      node: "local",
      url: null,
    })),
  };
}

/** Why a cluster node is not ready, or undefined: it must hold its lease. */
function clusterUnreadiness(state: ClusterState): string | undefined {
  return state.snapshot.leaseHeld ? undefined : "the node holds no lease in etcd";
}

export interface AppDependencies {
  store: EntityStore;
  /** The shards behind `store`, for the admin API, readiness and shard metrics. */
  shards: ShardSet;
  logger: Logger;
  bodyLimit: number;
  /** Which requests get a log line: only slow and cut-off ones unless `all`. */
  requestLogging?: RequestLogging;
  token: string | undefined;
  adminToken: string | undefined;
  /** Where this process's request metrics are kept; a new registry when absent. */
  registry?: Registry;
  /** What `/metrics` answers; when absent, `registry` plus gauges of `shards` (one process). */
  metricsSource?: MetricsSource;
  /** True once shutdown has begun: `/readyz` answers 503 from then on. */
  isStopping?: () => boolean;
  /** On a cluster node: its copy of the cluster (routing, topology, fence) and the operator's cluster actions. */
  cluster?: { state: ClusterState; admin: ClusterOperations };
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
  const openApi = await loadOpenApiDocument();
  const table = RouteTable.load(openApi.document);
  const validator = new RequestValidator({ bodyLimit });
  const respond = problemResponder(logger);
  const observe = observeRequests({ logger, metrics: new HttpMetrics(registry), logging: deps.requestLogging ?? "slow" });
  const { cluster } = deps;
  const router = cluster && new ClusterRouter(cluster.state, await Forwarder.create({ timeoutMs: FORWARD_TIMEOUT_MS }));
  const topology = cluster ? () => cluster.state.topology() : () => singleNodeTopology(shards);
  const serveData = dataPlane({
    handlers: table.bind(table.routes.filter(isDataPlaneRoute), entityHandlers(store, { topology, ...(router && { router }) })),
    validator,
    checkToken: bearerCheck(token),
    respond,
    ...(router && { router }),
  });
  const controlHandlers = {
    ...healthHandlers(shards, deps.isStopping ?? (() => false), cluster && (() => clusterUnreadiness(cluster.state))),
    ...adminHandlers(new ShardAdmin(shards)),
    ...clusterHandlers({ admin: cluster?.admin, shards, transfer: new ShardTransfer(shards, adminToken) }),
    ...metricsHandlers(metricsSource),
    ...docsHandlers(openApi),
    ...uiHandlers(),
  };
  const control = controlPlane({
    handlers: table.bind(
      table.routes.filter((route) => !isDataPlaneRoute(route)),
      controlHandlers,
    ),
    validator,
    ...(router && { router }),
  });

  const app = express();
  app.disable("x-powered-by");
  // Entity responses carry their own strong ETag ("<version>"); express's body hash is not one.
  app.set("etag", false);
  // Before any body is read: an unauthenticated request costs no parsing and changes nothing.
  app.use("/v1", bearerAuth(token));
  app.use(["/admin", "/metrics"], bearerAuth(adminToken));
  app.use(control);
  app.use(routeNotFound);
  app.use(problemMiddleware(respond));

  return (req: IncomingMessage, res: ServerResponse) => {
    // Matched once, before any router rewrites req.url: the log line's label and the dispatch.
    const path = pathOf(req.url ?? "/");
    const match = table.find(path);
    // First, so that every response is logged and counted, refusals included.
    observe(req, res, { path, route: routeLabel(match) });
    // Refusals and unknown routes too: a client learns of a newer map from any answer.
    if (router && (path === "/v1" || path.startsWith("/v1/"))) router.stampMapVersion(res);
    if (match && isDataPlaneRoute(match.route)) serveData(req, res, match, path);
    else app(toApiRequest(req, path, match), res);
  };
}
