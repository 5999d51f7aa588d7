import type { ServerResponse } from "node:http";
import type { operations } from "../../client/generated/openapi.js";
import type { TopologyAnswer } from "../cluster/topology.js";
import { entityJson } from "../entities/entity.js";
import type { EntityStore, Mutation } from "../entities/entity-store.js";
import type { WriteOutcome } from "../entities/write-outcome.js";
import type { JsonObject, JsonPatchOperation, OpsRequest } from "../documents/json-value.js";
import { assertSafeDocument } from "../documents/document-limits.js";
import type { ApiRequest } from "./api-request.js";
import { listAcrossNodes } from "./cluster-list.js";
import type { ClusterRouter } from "./cluster-router.js";
import { idempotencyOf, parseEntityTags, preconditionsOf } from "./request-headers.js";

const DEFAULT_PAGE_SIZE = 100;
const JSON_PATCH_TYPE = "application/json-patch+json";

/** Answers one validated request of the data plane. */
export type EntityHandler = (req: ApiRequest, res: ServerResponse) => void | Promise<void>;

/** The operations of openapi.yaml that the data plane serves, by operationId. */
type EntityHandlers = Partial<Record<keyof operations, EntityHandler>>;

/**
 * The `/v1` data plane, by openapi.yaml's operationId. Requests reach these handlers already
 * validated against openapi.yaml, so the handlers only translate between HTTP and the entity store.
 */
export function entityHandlers(store: EntityStore, cluster: { router?: ClusterRouter; topology: () => TopologyAnswer }) {
  return {
    getEntity: (req, res) => {
      const row = store.get(param(req, "type"), param(req, "id"));
      const etag = etagOf(row.version);
      res.setHeader("ETag", etag);
      const ifNoneMatch = req.headers["if-none-match"];
      if (ifNoneMatch !== undefined) {
        const tags = parseEntityTags(ifNoneMatch, "weak");
        if (tags === "any" || tags.includes(row.version)) {
          res.statusCode = 304;
          res.end();
          return;
        }
      }
      sendJson(res, 200, entityJson(row));
    },

    putEntity: async (req, res) => {
      const mutation = mutationOf(req);
      send(res, mutation, await store.put(mutation, safeBody<JsonObject>(req)));
    },

    patchEntity: async (req, res) => {
      const mutation = mutationOf(req);
      const outcome =
        mediaTypeOf(req) === JSON_PATCH_TYPE
          ? store.jsonPatch(mutation, safeBody<JsonPatchOperation[]>(req))
          : store.mergePatch(mutation, safeBody<JsonObject>(req));
      send(res, mutation, await outcome);
    },

    applyOps: async (req, res) => {
      const mutation = mutationOf(req, "/ops");
      send(res, mutation, await store.ops(mutation, safeBody<OpsRequest>(req)));
    },

    deleteEntity: async (req, res) => {
      const mutation = mutationOf(req);
      send(res, mutation, await store.delete(mutation));
    },

    listEntities: async (req, res) => {
      const { limit, cursor, prefix, scope } = req.query;
      const type = param(req, "type");
      const options = {
        prefix: typeof prefix === "string" ? prefix : "",
        limit: limit === undefined ? DEFAULT_PAGE_SIZE : Number(limit),
        ...(typeof cursor === "string" && { cursor }),
      };
      const page =
        cluster.router && scope !== "node"
          ? await listAcrossNodes(cluster.router, store, req, type, options)
          : store.list(type, options);
      sendJson(res, 200, `{"items":[${page.items.join(",")}],"nextCursor":${JSON.stringify(page.nextCursor)}}`);
    },

    getTopology: (_req, res) => {
      sendJson(res, 200, JSON.stringify(cluster.topology()));
    },
  } satisfies EntityHandlers;
}

/** A path parameter; the validator has checked that the route has it. */
function param(req: ApiRequest, name: "type" | "id"): string {
  return req.params[name] ?? "";
}

function mediaTypeOf(req: ApiRequest): string {
  return (req.headers["content-type"] ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
}

function mutationOf(req: ApiRequest, suffix = ""): Mutation {
  const type = param(req, "type");
  const id = param(req, "id");
  const idempotency = idempotencyOf(req, entityLocation(type, id) + suffix, req.bodyDigest);
  return { type, id, preconditions: preconditionsOf(req), ...(idempotency && { idempotency }) };
}

/** The validated body, after the checks JSON Schema cannot express (depth, `__proto__`). */
function safeBody<T>(req: ApiRequest): T {
  assertSafeDocument(req.body);
  return req.body as T;
}

const JSON_CONTENT_TYPE = "application/json; charset=utf-8";

/*
 * The bodies here are JSON text already, and the handlers answer conditional requests themselves,
 * so nothing stands between the stored text and the socket.
 */
function sendJson(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader("Content-Type", JSON_CONTENT_TYPE);
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(body);
}

function etagOf(version: number): string {
  return `"${version}"`;
}

function entityLocation(type: string, id: string): string {
  return `/v1/entities/${type}/${encodeURIComponent(id)}`;
}

/**
 * The answer to a write, from what it did alone: a replay derives the same status and headers
 * from its record as the first request did from its write, whatever has happened since.
 */
function send(res: ServerResponse, { type, id }: Mutation, outcome: WriteOutcome): void {
  if (outcome.replayed) res.setHeader("Idempotent-Replayed", "true");
  if (outcome.kind === "deleted") {
    res.statusCode = 204;
    res.end();
    return;
  }
  res.setHeader("ETag", etagOf(outcome.version));
  if (outcome.kind === "created") res.setHeader("Location", entityLocation(type, id));
  sendJson(res, outcome.kind === "created" ? 201 : 200, outcome.representation);
}
