import express, { type Express } from "express";
import type { Logger } from "pino";
import type { EntityStore } from "./entities/entity-store.js";
import { bearerAuth } from "./http/auth.js";
import { entityRoutes } from "./http/entity-routes.js";
import { jsonBody, openApiValidation } from "./http/openapi-validation.js";
import { problemMiddleware, routeNotFound } from "./http/problem-middleware.js";

export interface AppDependencies {
  store: EntityStore;
  logger: Logger;
  bodyLimit: number;
  token: string | undefined;
  adminToken: string | undefined;
}

/** The HTTP application, without `listen`, so tests can drive it directly. */
export function createApp({ store, logger, bodyLimit, token }: AppDependencies): Express {
  const app = express();
  app.disable("x-powered-by");
  // Entity responses carry their own strong ETag ("<version>"); express's body hash is not one.
  app.set("etag", false);

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });

  app.use("/v1", bearerAuth(token));
  app.use(jsonBody(bodyLimit));
  app.use(openApiValidation());
  app.use(entityRoutes(store));
  app.use(routeNotFound);
  app.use(problemMiddleware(logger));
  return app;
}
