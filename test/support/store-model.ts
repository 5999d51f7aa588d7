import { expect } from "vitest";
import type { JsonObject, JsonValue } from "../../server/documents/json-value.js";
import {
  canonical,
  jsonPatchModel,
  mergePatchModel,
  opsModel,
  type DocumentFailure,
  type OpsBody,
  type PatchOperation,
} from "./document-model.js";
import { bodyOf, jsonRequest, type Reply, type SendOptions } from "./http.js";

export type Command =
  | { kind: "get"; id: string; ifNoneMatch?: string }
  | { kind: "put"; id: string; data: JsonObject; ifMatch?: string; ifNoneMatch?: "*"; key?: string }
  | { kind: "mergePatch"; id: string; patch: JsonObject; ifMatch?: string; key?: string }
  | { kind: "jsonPatch"; id: string; patch: PatchOperation[]; ifMatch?: string; key?: string }
  | { kind: "ops"; id: string; body: OpsBody; key?: string }
  | { kind: "delete"; id: string; ifMatch?: string; key?: string };

interface PreparedRequest {
  method: string;
  path: string;
  options: SendOptions;
  /** What docs/design.md says the fingerprint is made of, as one string. */
  fingerprint: string;
}

interface EntityState {
  /** The last version the key had, live or deleted (0: never written). */
  version: number;
  data: JsonObject | null;
  createdAt: string;
}

interface EntityView {
  version: number;
  data: JsonObject;
}

type Expected =
  | { kind: "entity"; status: 200 | 201; view: EntityView }
  | { kind: "deleted" }
  | { kind: "not-modified"; version: number }
  | { kind: "problem"; status: number; code: string; current?: EntityView | null; failed?: Record<string, JsonValue> };

function entityPath(type: string, id: string): string {
  return `/v1/entities/${type}/${encodeURIComponent(id)}`;
}

export function prepare(type: string, command: Command): PreparedRequest {
  const headers: Record<string, string> = {};
  let method: string;
  let path = entityPath(type, command.id);
  let body: SendOptions = {};
  switch (command.kind) {
    case "get":
      method = "GET";
      if (command.ifNoneMatch !== undefined) headers["if-none-match"] = command.ifNoneMatch;
      break;
    case "put":
      method = "PUT";
      body = jsonRequest(command.data);
      if (command.ifNoneMatch !== undefined) headers["if-none-match"] = command.ifNoneMatch;
      break;
    case "mergePatch":
      method = "PATCH";
      body = jsonRequest(command.patch, "application/merge-patch+json");
      break;
    case "jsonPatch":
      method = "PATCH";
      body = jsonRequest(command.patch, "application/json-patch+json");
      break;
    case "ops":
      method = "POST";
      path += "/ops";
      body = jsonRequest(command.body);
      break;
    case "delete":
      method = "DELETE";
      break;
  }
  if ("ifMatch" in command && command.ifMatch !== undefined) headers["if-match"] = command.ifMatch;
  if ("key" in command && command.key !== undefined) headers["idempotency-key"] = command.key;
  Object.assign(headers, body.headers);
  const fingerprint = [method, path, headers["if-match"], headers["if-none-match"], headers["content-type"], body.body].join(
    "\n",
  );
  return { method, path, options: { headers, ...(body.body !== undefined && { body: body.body }) }, fingerprint };
}

/** The versions an `If-Match` (strong) or `If-None-Match` (weak) header names, or "any" for `*`. */
function taggedVersions(header: string, comparison: "strong" | "weak"): "any" | number[] {
  if (header.trim() === "*") return "any";
  return header
    .split(",")
    .map((tag) => /^(W\/)?"(\d+)"$/.exec(tag.trim()))
    .filter((match) => match !== null && (comparison === "weak" || match[1] === undefined))
    .map((match) => Number(match![2]));
}

function tagMatches(header: string, comparison: "strong" | "weak", state: EntityState): boolean {
  if (state.data === null) return false;
  const versions = taggedVersions(header, comparison);
  return versions === "any" || versions.includes(state.version);
}

function failureProblem(failure: DocumentFailure, body: OpsBody | undefined, current: EntityView | null): Expected {
  if (typeof failure === "string") return { kind: "problem", status: 409, code: failure, current };
  const condition = body!.if[failure.conditionIndex]!;
  const failed: Record<string, JsonValue> = { index: failure.conditionIndex, path: condition.path, op: condition.op };
  if ("value" in condition) failed.value = condition.value;
  return { kind: "problem", status: 409, code: "condition-failed", current, failed };
}

/**
 * The data plane of docs/design.md for one entity type, in memory. `check` predicts the answer to a
 * command, compares it with the server's, and then advances the model, so one divergence
 * fails the run at the command that caused it.
 */
export class StoreModel {
  private readonly entities = new Map<string, EntityState>();
  private readonly records = new Map<string, { fingerprint: string; reply: Reply }>();

  constructor(readonly type: string) {}

  check(command: Command, request: PreparedRequest, reply: Reply): void {
    const context = `${request.method} ${request.path} ${JSON.stringify(request.options.headers)} ${request.options.body ?? ""}`;
    const key = "key" in command ? command.key : undefined;
    const recordKey = `${command.id}\n${key}`;
    const record = key === undefined ? undefined : this.records.get(recordKey);
    if (record !== undefined) {
      if (record.fingerprint === request.fingerprint) {
        expect(replayOf(reply), `replay of ${context}`).toEqual(replayOf(record.reply));
        expect(reply.headers["idempotent-replayed"], context).toBe("true");
      } else {
        expectProblem(reply, { kind: "problem", status: 422, code: "idempotency-key-reused" }, context);
      }
      return;
    }
    expect(reply.headers["idempotent-replayed"], context).toBeUndefined();
    const state = this.state(command.id);
    const expected = this.expect(command, state);
    switch (expected.kind) {
      case "problem":
        expectProblem(reply, expected, context);
        return;
      case "not-modified":
        expect({ status: reply.status, etag: reply.headers.etag, text: reply.text }, context).toEqual({
          status: 304,
          etag: `"${expected.version}"`,
          text: "",
        });
        return;
      case "deleted":
        expect({ status: reply.status, text: reply.text }, context).toEqual({ status: 204, text: "" });
        this.entities.set(command.id, { version: state.version + 1, data: null, createdAt: "" });
        break;
      case "entity": {
        const created = expected.status === 201 && command.kind !== "get";
        const entity = this.expectEntity(reply, command.id, expected, context);
        expect(entity.createdAt, `${context}: createdAt`).toBe(created ? entity.createdAt : state.createdAt);
        if (command.kind === "get") return;
        this.entities.set(command.id, { version: expected.view.version, data: expected.view.data, createdAt: entity.createdAt });
        break;
      }
    }
    if (key !== undefined) this.records.set(recordKey, { fingerprint: request.fingerprint, reply });
  }

  /** The live entities whose id starts with `prefix`, in id (byte) order. */
  listing(prefix: string): { id: string; version: number; data: JsonObject }[] {
    return [...this.entities.entries()]
      .filter(([id, state]) => state.data !== null && id.startsWith(prefix))
      .sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
      .map(([id, state]) => ({ id, version: state.version, data: state.data! }));
  }

  private state(id: string): EntityState {
    return this.entities.get(id) ?? { version: 0, data: null, createdAt: "" };
  }

  private expect(command: Command, state: EntityState): Expected {
    const live = state.data !== null;
    const current: EntityView | null = live ? { version: state.version, data: state.data! } : null;
    const notFound: Expected = { kind: "problem", status: 404, code: "entity-not-found" };
    if (command.kind === "get") {
      if (!live) return notFound;
      if (command.ifNoneMatch !== undefined && tagMatches(command.ifNoneMatch, "weak", state)) {
        return { kind: "not-modified", version: state.version };
      }
      return { kind: "entity", status: 200, view: current! };
    }
    const mismatch: Expected = { kind: "problem", status: 412, code: "version-mismatch", current };
    if ("ifMatch" in command && command.ifMatch !== undefined && !tagMatches(command.ifMatch, "strong", state)) return mismatch;
    if (command.kind === "put" && command.ifNoneMatch !== undefined && live) return mismatch;
    const written = (data: JsonObject): Expected => ({
      kind: "entity",
      status: live ? 200 : 201,
      view: { version: state.version + 1, data },
    });
    switch (command.kind) {
      case "put":
        return written(command.data);
      case "mergePatch":
        return live ? written(mergePatchModel(state.data!, command.patch) as JsonObject) : notFound;
      case "jsonPatch": {
        if (!live) return notFound;
        const result = jsonPatchModel(state.data!, command.patch);
        return result.ok ? written(result.doc) : failureProblem(result.failure, undefined, current);
      }
      case "ops": {
        if (!live && !command.body.upsert) return notFound;
        const result = opsModel(state.data ?? {}, command.body);
        return result.ok ? written(result.doc) : failureProblem(result.failure, command.body, current);
      }
      case "delete":
        return live ? { kind: "deleted" } : notFound;
    }
  }

  private expectEntity(
    reply: Reply,
    id: string,
    expected: { status: 200 | 201; view: EntityView },
    context: string,
  ): { createdAt: string } {
    const body = bodyOf(reply) as {
      type: string;
      id: string;
      version: number;
      data: JsonValue;
      createdAt: string;
      updatedAt: string;
    };
    expect(
      {
        status: reply.status,
        etag: reply.headers.etag,
        location: reply.headers.location,
        type: body?.type,
        id: body?.id,
        version: body?.version,
        data: canonical(body?.data ?? null),
      },
      context,
    ).toEqual({
      status: expected.status,
      etag: `"${expected.view.version}"`,
      location: expected.status === 201 ? entityPath(this.type, id) : undefined,
      type: this.type,
      id,
      version: expected.view.version,
      data: canonical(expected.view.data),
    });
    expect(Date.parse(body.updatedAt) >= Date.parse(body.createdAt), `${context}: updatedAt >= createdAt`).toBe(true);
    return { createdAt: body.createdAt };
  }
}

function replayOf(reply: Reply) {
  return { status: reply.status, etag: reply.headers.etag, location: reply.headers.location, text: reply.text };
}

function expectProblem(reply: Reply, expected: Extract<Expected, { kind: "problem" }>, context: string): void {
  const body = bodyOf(reply) as {
    status?: number;
    code?: string;
    current?: { version: number; data: JsonValue } | null;
    failed?: unknown;
  };
  const view = (entity: { version: number; data: JsonValue } | null | undefined) =>
    entity === null || entity === undefined ? entity : { version: entity.version, data: canonical(entity.data) };
  expect(
    {
      status: reply.status,
      contentType: reply.headers["content-type"]?.split(";")[0],
      code: body?.code,
      bodyStatus: body?.status,
      ...(expected.current !== undefined && { current: view(body?.current) }),
      ...(expected.failed !== undefined && { failed: body?.failed }),
    },
    context,
  ).toEqual({
    status: expected.status,
    contentType: "application/problem+json",
    code: expected.code,
    bodyStatus: expected.status,
    ...(expected.current !== undefined && { current: view(expected.current) }),
    ...(expected.failed !== undefined && { failed: expected.failed }),
  });
}
