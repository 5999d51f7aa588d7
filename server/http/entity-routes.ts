import { Router, type Request, type Response } from "express";
import { entityJson } from "../entities/entity.js";
import { entityLocation, etagOf, type EntityStore, type Mutation, type WriteOutcome } from "../entities/entity-store.js";
import type { JsonObject, JsonPatchOperation, OpsRequest } from "../entities/json-value.js";
import { assertSafeDocument } from "../entities/document-limits.js";
import { idempotencyOf, parseEntityTags, preconditionsOf } from "./request-headers.js";

const DEFAULT_PAGE_SIZE = 100;
const JSON_PATCH_TYPE = "application/json-patch+json";

type EntityParams = { type: string; id: string };

/**
 * The `/v1` data plane. Requests reach these handlers already validated against openapi.yaml,
 * so the handlers only translate between HTTP and the entity store.
 */
export function entityRoutes(store: EntityStore): Router {
  const router = Router();

  router.get("/v1/entities/:type/:id", (req: Request<EntityParams>, res) => {
    const row = store.get(req.params.type, req.params.id);
    const etag = etagOf(row.version);
    res.setHeader("ETag", etag);
    const ifNoneMatch = req.headers["if-none-match"];
    if (ifNoneMatch !== undefined) {
      const tags = parseEntityTags(ifNoneMatch, "weak");
      if (tags === "any" || tags.includes(row.version)) {
        res.status(304).end();
        return;
      }
    }
    sendJson(res, 200, entityJson(row));
  });

  router.put("/v1/entities/:type/:id", async (req: Request<EntityParams>, res) => {
    send(res, await store.put(mutationOf(req), safeBody<JsonObject>(req)));
  });

  router.patch("/v1/entities/:type/:id", async (req: Request<EntityParams>, res) => {
    const mutation = mutationOf(req);
    const outcome = req.is(JSON_PATCH_TYPE)
      ? store.jsonPatch(mutation, safeBody<JsonPatchOperation[]>(req))
      : store.mergePatch(mutation, safeBody<JsonObject>(req));
    send(res, await outcome);
  });

  router.post("/v1/entities/:type/:id/ops", async (req: Request<EntityParams>, res) => {
    send(res, await store.ops(mutationOf(req, "/ops"), safeBody<OpsRequest>(req)));
  });

  router.delete("/v1/entities/:type/:id", async (req: Request<EntityParams>, res) => {
    send(res, await store.delete(mutationOf(req)));
  });

  router.get("/v1/entities/:type", (req: Request<{ type: string }>, res) => {
    const { limit, cursor, prefix } = req.query as { limit?: string; cursor?: string; prefix?: string };
    const page = store.list(req.params.type, {
      prefix: prefix ?? "",
      limit: limit === undefined ? DEFAULT_PAGE_SIZE : Number(limit),
      ...(cursor !== undefined && { cursor }),
    });
    sendJson(res, 200, `{"items":[${page.items.join(",")}],"nextCursor":${JSON.stringify(page.nextCursor)}}`);
  });

  return router;
}

function mutationOf(req: Request<EntityParams>, suffix = ""): Mutation {
  const { type, id } = req.params;
  const idempotency = idempotencyOf(req, entityLocation(type, id) + suffix);
  return { type, id, preconditions: preconditionsOf(req), ...(idempotency && { idempotency }) };
}

/** The validated body, after the checks JSON Schema cannot express (depth, `__proto__`). */
function safeBody<T>(req: Request): T {
  assertSafeDocument(req.body);
  return req.body as T;
}

const JSON_CONTENT_TYPE = "application/json; charset=utf-8";

/*
 * The bodies here are JSON text already, and the routes answer conditional requests themselves,
 * so express's res.send (media-type lookup, charset rewriting, freshness check) adds nothing
 * but cost to every response.
 */
function sendJson(res: Response, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader("Content-Type", JSON_CONTENT_TYPE);
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(body);
}

function send(res: Response, outcome: WriteOutcome): void {
  if (outcome.replayed) res.setHeader("Idempotent-Replayed", "true");
  if (outcome.etag !== null) res.setHeader("ETag", outcome.etag);
  if (outcome.location !== null) res.setHeader("Location", outcome.location);
  if (outcome.body === null) res.status(outcome.status).end();
  else sendJson(res, outcome.status, outcome.body);
}
