import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConditionFailedError,
  createClient,
  EntityNotFoundError,
  HttpError,
  IdempotencyKeyReusedError,
  isProblem,
  NetworkError,
  PatchConflictError,
  ProblemError,
  TestFailedError,
  VersionMismatchError,
  type ApostateClient,
  type Entity,
} from "../../client/index.js";
import { problemResponse, recordingFetch, rejectionOf, startServerAndClient } from "../support/client-helpers.js";

let baseUrl = "";
let db: ApostateClient;
let stop: () => Promise<void>;

beforeAll(async () => {
  ({ baseUrl, db, stop } = await startServerAndClient({ baseDelayMs: 5, maxDelayMs: 50 }));
});
afterAll(() => stop());

describe("get", () => {
  it("reads an entity", async () => {
    await db.put("account", "get-1", { balance: 5 });
    const entity = await db.get("account", "get-1");
    expect(entity).toMatchObject({ type: "account", id: "get-1", version: 1, data: { balance: 5 } });
    expect(Date.parse(entity.createdAt)).not.toBeNaN();
  });

  it("throws EntityNotFoundError with the problem body for an absent entity", async () => {
    const error = await rejectionOf(db.get("account", "nobody"));
    expect(error).toBeInstanceOf(EntityNotFoundError);
    expect(error).toBeInstanceOf(ProblemError);
    expect(error).toMatchObject({ status: 404, code: "entity-not-found" });
    expect((error as ProblemError).problem).toEqual({
      type: "urn:apostate:problem:entity-not-found",
      title: "Entity not found",
      status: 404,
      code: "entity-not-found",
      detail: "account/nobody does not exist",
      instance: "/v1/entities/account/nobody",
    });
  });

  it("throws a ProblemError `invalid-key` for a key outside the allowed form", async () => {
    const error = await rejectionOf(db.get("Account", "x"));
    expect(isProblem(error, "invalid-key")).toBe(true);
    expect(error).toMatchObject({ status: 400 });
  });

  it("sends ids with reserved characters intact", async () => {
    const id = "a:b@c!$'()*+,;=~.-_";
    await db.put("odd", id, { ok: true });
    expect(await db.get("odd", id)).toMatchObject({ id, data: { ok: true } });
  });
});

describe("put", () => {
  it("creates, then replaces, resolving to the entity each time", async () => {
    expect(await db.put("doc", "put-1", { v: 1 })).toMatchObject({ version: 1, data: { v: 1 } });
    expect(await db.put("doc", "put-1", { v: 2 })).toMatchObject({ version: 2, data: { v: 2 } });
  });

  it("writes with ifMatch when the version matches, and throws VersionMismatchError with current when not", async () => {
    await db.put("doc", "put-2", { v: 1 });
    expect(await db.put("doc", "put-2", { v: 2 }, { ifMatch: 1 })).toMatchObject({ version: 2 });
    const error = await rejectionOf(db.put("doc", "put-2", { v: 3 }, { ifMatch: 1 }));
    expect(error).toBeInstanceOf(VersionMismatchError);
    expect(error).toMatchObject({ status: 412, code: "version-mismatch" });
    expect((error as VersionMismatchError).current).toMatchObject({ version: 2, data: { v: 2 } });
  });

  it("creates only with ifNoneMatch '*'", async () => {
    expect(await db.put("doc", "put-3", { v: 1 }, { ifNoneMatch: "*" })).toMatchObject({ version: 1 });
    const error = await rejectionOf(db.put("doc", "put-3", { v: 2 }, { ifNoneMatch: "*" }));
    expect(error).toBeInstanceOf(VersionMismatchError);
    expect((error as VersionMismatchError).current).toMatchObject({ version: 1 });
  });

  it("replays a repeated idempotency key and throws IdempotencyKeyReusedError for another body", async () => {
    const first = await db.put("doc", "put-4", { v: 1 }, { idempotencyKey: "put-4-key" });
    const again = await db.put("doc", "put-4", { v: 1 }, { idempotencyKey: "put-4-key" });
    expect(again).toEqual(first);
    const error = await rejectionOf(db.put("doc", "put-4", { v: 2 }, { idempotencyKey: "put-4-key" }));
    expect(error).toBeInstanceOf(IdempotencyKeyReusedError);
    expect(error).toMatchObject({ status: 422, code: "idempotency-key-reused" });
    expect(await db.get("doc", "put-4")).toMatchObject({ version: 1 });
  });
});

describe("patch and jsonPatch", () => {
  it("applies a merge patch, null removing a member", async () => {
    await db.put("doc", "patch-1", { a: 1, b: 2 });
    expect(await db.patch("doc", "patch-1", { b: null, c: 3 })).toMatchObject({ version: 2, data: { a: 1, c: 3 } });
  });

  it("throws EntityNotFoundError and VersionMismatchError", async () => {
    expect(await rejectionOf(db.patch("doc", "patch-missing", { a: 1 }))).toBeInstanceOf(EntityNotFoundError);
    await db.put("doc", "patch-2", { a: 1 });
    const error = await rejectionOf(db.patch("doc", "patch-2", { a: 2 }, { ifMatch: 7 }));
    expect(error).toBeInstanceOf(VersionMismatchError);
  });

  it("applies a JSON Patch, all or nothing", async () => {
    await db.put("doc", "jp-1", { list: [1] });
    const patched = await db.jsonPatch("doc", "jp-1", [
      { op: "add", path: "/list/-", value: 2 },
      { op: "add", path: "/name", value: "x" },
    ]);
    expect(patched).toMatchObject({ version: 2, data: { list: [1, 2], name: "x" } });
    const replaced = await db.jsonPatch("doc", "jp-1", [{ op: "replace", path: "/name", value: "y" }], { ifMatch: 2 });
    expect(replaced).toMatchObject({ version: 3, data: { list: [1, 2], name: "y" } });
  });

  it("throws `test-failed` and `patch-conflict` problems carrying current", async () => {
    await db.put("doc", "jp-2", { n: 1 });
    const failed = await rejectionOf(db.jsonPatch("doc", "jp-2", [{ op: "test", path: "/n", value: 2 }]));
    expect(isProblem(failed, "test-failed")).toBe(true);
    expect(failed).toBeInstanceOf(TestFailedError);
    expect((failed as TestFailedError).current).toMatchObject({ version: 1 });
    const conflict = await rejectionOf(db.jsonPatch("doc", "jp-2", [{ op: "remove", path: "/missing" }]));
    expect(isProblem(conflict, "patch-conflict")).toBe(true);
    expect(conflict).toBeInstanceOf(PatchConflictError);
    expect(await db.get("doc", "jp-2")).toMatchObject({ version: 1 });
  });
});

describe("ops", () => {
  it("applies conditions and operations atomically, creating with upsert", async () => {
    const created = await db.ops("account", "ops-1", { do: [{ op: "inc", path: "/balance", value: 10 }], upsert: true });
    expect(created).toMatchObject({ version: 1, data: { balance: 10 } });
    const debited = await db.ops("account", "ops-1", {
      if: [{ path: "/balance", op: "gte", value: 10 }],
      do: [
        { op: "inc", path: "/balance", value: -10 },
        { op: "append", path: "/history", value: { debit: 10 } },
      ],
    });
    expect(debited).toMatchObject({ version: 2, data: { balance: 0, history: [{ debit: 10 }] } });
  });

  it("throws ConditionFailedError naming the condition, with current, and changes nothing", async () => {
    await db.ops("account", "ops-2", { do: [{ op: "set", path: "/balance", value: 5 }], upsert: true });
    const error = await rejectionOf(
      db.ops("account", "ops-2", {
        if: [{ path: "/balance", op: "gte", value: 10 }],
        do: [{ op: "inc", path: "/balance", value: -10 }],
      }),
    );
    expect(error).toBeInstanceOf(ConditionFailedError);
    expect(error).toMatchObject({ status: 409, code: "condition-failed" });
    const failure = error as ConditionFailedError;
    expect(failure.failed).toEqual({ index: 0, path: "/balance", op: "gte", value: 10 });
    expect(failure.current).toMatchObject({ version: 1, data: { balance: 5 } });
  });

  it("throws EntityNotFoundError without upsert, and `patch-conflict` for an impossible operation", async () => {
    expect(await rejectionOf(db.ops("account", "ops-missing", { do: [] }))).toBeInstanceOf(EntityNotFoundError);
    await db.put("account", "ops-3", { balance: "ten" });
    const error = await rejectionOf(db.ops("account", "ops-3", { do: [{ op: "inc", path: "/balance", value: 1 }] }));
    expect(isProblem(error, "patch-conflict")).toBe(true);
  });

  it("applies a repeated idempotency key once", async () => {
    const body = { do: [{ op: "inc" as const, path: "/n", value: 1 }], upsert: true };
    await db.ops("counter", "ops-4", body, { idempotencyKey: "once" });
    const again = await db.ops("counter", "ops-4", body, { idempotencyKey: "once" });
    expect(again).toMatchObject({ version: 1, data: { n: 1 } });
    expect(await db.get("counter", "ops-4")).toMatchObject({ version: 1, data: { n: 1 } });
  });
});

describe("delete", () => {
  it("resolves to nothing, and the entity is gone", async () => {
    await db.put("doc", "del-1", { a: 1 });
    await expect(db.delete("doc", "del-1")).resolves.toBeUndefined();
    expect(await rejectionOf(db.get("doc", "del-1"))).toBeInstanceOf(EntityNotFoundError);
    expect(await db.put("doc", "del-1", { a: 2 })).toMatchObject({ version: 3 });
  });

  it("throws EntityNotFoundError for an absent entity and VersionMismatchError on ifMatch", async () => {
    expect(await rejectionOf(db.delete("doc", "del-missing"))).toBeInstanceOf(EntityNotFoundError);
    await db.put("doc", "del-2", { a: 1 });
    expect(await rejectionOf(db.delete("doc", "del-2", { ifMatch: 2 }))).toBeInstanceOf(VersionMismatchError);
    await db.delete("doc", "del-2", { ifMatch: 1 });
  });
});

describe("list", () => {
  it("iterates every page lazily, in id order, with a prefix", async () => {
    const ids = Array.from({ length: 25 }, (_, i) => `item-${String(i).padStart(3, "0")}`);
    await Promise.all(ids.map((id) => db.put("listed", id, { id })));
    await db.put("listed", "other", {});
    const { fetch, sent } = recordingFetch();
    const paged = createClient({ baseUrl, fetch });

    const seen: string[] = [];
    for await (const entity of paged.list("listed", { prefix: "item-", pageSize: 10 })) seen.push(entity.id);
    expect(seen).toEqual(ids);
    expect(sent).toHaveLength(3);

    const iterator = paged.list("listed", { pageSize: 10 });
    await iterator.next();
    expect(sent).toHaveLength(4);
  });

  it("yields nothing for an empty type and throws `invalid-query` for a bad page size", async () => {
    const none: Entity[] = [];
    for await (const entity of db.list("nothing-here")) none.push(entity);
    expect(none).toEqual([]);
    const error = await rejectionOf(db.list("listed", { pageSize: 5000 }).next());
    expect(error).toBeInstanceOf(ProblemError);
    expect(error).toMatchObject({ status: 400 });
  });
});

describe("modify", () => {
  it("serialises concurrent read-modify-writes through If-Match", async () => {
    await db.put("counter", "mod-1", { n: 0 });
    await Promise.all(
      Array.from({ length: 8 }, () => db.modify("counter", "mod-1", (data) => ({ n: Number(data.n) + 1 }), { maxAttempts: 50 })),
    );
    expect(await db.get("counter", "mod-1")).toMatchObject({ version: 9, data: { n: 8 } });
  });

  it("gives up with VersionMismatchError after maxAttempts conflicts, and throws EntityNotFoundError when absent", async () => {
    await db.put("counter", "mod-2", { n: 0 });
    let calls = 0;
    const error = await rejectionOf(
      db.modify(
        "counter",
        "mod-2",
        async (data) => {
          calls += 1;
          await db.put("counter", "mod-2", { n: -calls }); // another writer wins every time
          return { n: Number(data.n) + 1 };
        },
        { maxAttempts: 3 },
      ),
    );
    expect(error).toBeInstanceOf(VersionMismatchError);
    expect(calls).toBe(3);
    expect(await rejectionOf(db.modify("counter", "mod-missing", (data) => data))).toBeInstanceOf(EntityNotFoundError);
  });

  it("settles a lost write answer by its idempotency key, never by calling fn again", async () => {
    await db.put("counter", "mod-3", { n: 0 });
    const { fetch, sent } = recordingFetch(async (request, index) => {
      if (request.method !== "PUT" || index !== 1) return undefined;
      await (await globalThis.fetch(request)).arrayBuffer();
      throw new TypeError("fetch failed"); // the write applied, its answer was lost
    });
    const lossy = createClient({ baseUrl, fetch, routing: "base", retry: { baseDelayMs: 1 } });
    let calls = 0;
    const result = await lossy.modify("counter", "mod-3", (data) => {
      calls += 1;
      return { n: Number(data.n) + 1 };
    });
    expect(calls).toBe(1);
    expect(result).toMatchObject({ version: 2, data: { n: 1 } });
    expect(sent.map((r) => r.method)).toEqual(["GET", "PUT", "PUT"]);
    expect(sent[2]?.idempotencyKey).toBe(sent[1]?.idempotencyKey);
  });
});

// The clients below count requests or pick them by index: routing "base" keeps the one map load
// of the default routing out of the count (test/client/routing.test.ts covers routing).
describe("retries", () => {
  it("sends one idempotency key on every attempt of a mutation and applies it once", async () => {
    const { fetch, sent } = recordingFetch(async (request, index) => {
      if (index === 0) return problemResponse(503, "unavailable");
      if (index === 1) {
        await (await globalThis.fetch(request)).arrayBuffer();
        throw new TypeError("fetch failed");
      }
      return undefined;
    });
    const flaky = createClient({ baseUrl, fetch, routing: "base", retry: { baseDelayMs: 1 } });
    const entity = await flaky.ops("counter", "retry-1", { do: [{ op: "inc", path: "/n", value: 1 }], upsert: true });
    expect(entity).toMatchObject({ version: 1, data: { n: 1 } });
    expect(sent).toHaveLength(3);
    const keys = new Set(sent.map((r) => r.idempotencyKey));
    expect(keys.size).toBe(1);
    expect([...keys][0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(await db.get("counter", "retry-1")).toMatchObject({ version: 1 });
  });

  it("uses the caller's idempotency key, and a fresh key for each call", async () => {
    const { fetch, sent } = recordingFetch();
    const recorded = createClient({ baseUrl, fetch, routing: "base" });
    await recorded.put("doc", "retry-2", { a: 1 }, { idempotencyKey: "mine" });
    await recorded.put("doc", "retry-2", { a: 2 });
    await recorded.put("doc", "retry-2", { a: 3 });
    expect(sent[0]?.idempotencyKey).toBe("mine");
    expect(sent[1]?.idempotencyKey).not.toBe(sent[2]?.idempotencyKey);
  });

  it.each([
    [400, "invalid-body"],
    [401, "unauthorized"],
    [404, "entity-not-found"],
    [409, "condition-failed"],
    [412, "version-mismatch"],
    [422, "idempotency-key-reused"],
    [500, "internal"],
  ])("never retries a %i", async (status, code) => {
    const { fetch, sent } = recordingFetch(() => problemResponse(status, code));
    const error = await rejectionOf(createClient({ baseUrl, fetch, routing: "base" }).delete("doc", "x"));
    expect(error).toMatchObject({ status, code });
    expect(sent).toHaveLength(1);
  });

  it.each([408, 429, 502, 503, 504])("retries a %i up to maxAttempts, then throws its problem", async (status) => {
    const { fetch, sent } = recordingFetch(() => problemResponse(status, "unavailable"));
    const client = createClient({ baseUrl, fetch, routing: "base", retry: { maxAttempts: 3, baseDelayMs: 1 } });
    const error = await rejectionOf(client.get("doc", "x"));
    expect(error).toBeInstanceOf(ProblemError);
    expect(error).toMatchObject({ status });
    expect(sent).toHaveLength(3);
  });

  it("throws HttpError for an error that is not a problem", async () => {
    const { fetch } = recordingFetch(() => new Response("<html>bad gateway</html>", { status: 502 }));
    const error = await rejectionOf(createClient({ baseUrl, fetch, retry: { maxAttempts: 2, baseDelayMs: 1 } }).get("doc", "x"));
    expect(error).toBeInstanceOf(HttpError);
    expect(error).toMatchObject({ status: 502, body: "<html>bad gateway</html>" });
  });

  it("honours Retry-After, and gives up at once when it would cross the deadline", async () => {
    const { fetch, sent } = recordingFetch((_request, index) =>
      index === 0 ? problemResponse(503, "unavailable", { "Retry-After": "1" }) : undefined,
    );
    await db.put("doc", "retry-3", {});
    const started = Date.now();
    await createClient({ baseUrl, fetch, routing: "base", retry: { baseDelayMs: 1 } }).get("doc", "retry-3");
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(sent).toHaveLength(2);

    const impatient = recordingFetch(() => problemResponse(503, "unavailable", { "Retry-After": "5" }));
    const began = Date.now();
    const error = await rejectionOf(
      createClient({ baseUrl, fetch: impatient.fetch, routing: "base", retry: { deadlineMs: 1_000 } }).get("doc", "x"),
    );
    expect(error).toMatchObject({ code: "unavailable" });
    expect(impatient.sent).toHaveLength(1);
    expect(Date.now() - began).toBeLessThan(500);
  });

  it("times out each attempt, retries, and throws NetworkError when none answers", async () => {
    const hang = (request: Request) =>
      new Promise<Response>((_resolve, reject) => request.signal.addEventListener("abort", () => reject(request.signal.reason)));
    const { fetch, sent } = recordingFetch(hang);
    const client = createClient({ baseUrl, fetch, routing: "base", timeoutMs: 50, retry: { maxAttempts: 3, baseDelayMs: 1 } });
    const error = await rejectionOf(client.put("doc", "x", {}));
    expect(error).toBeInstanceOf(NetworkError);
    expect(error).toMatchObject({ attempts: 3 });
    expect((error as Error).message).toMatch(/no answer within 50 ms/);
    expect(sent).toHaveLength(3);
    expect(new Set(sent.map((r) => r.idempotencyKey)).size).toBe(1);
  });

  it("stops at the caller's AbortSignal, during an attempt or a wait", async () => {
    const { fetch, sent } = recordingFetch(() => problemResponse(503, "unavailable", { "Retry-After": "10" }));
    const client = createClient({ baseUrl, fetch, routing: "base", retry: { deadlineMs: 60_000 } });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("caller gave up")), 100);
    const error = await rejectionOf(client.get("doc", "x", { signal: controller.signal }));
    expect(error).toEqual(new Error("caller gave up"));
    expect(sent).toHaveLength(1);

    const hanging = createClient({
      baseUrl,
      routing: "base",
      fetch: (request) =>
        new Promise((_resolve, reject) => request.signal.addEventListener("abort", () => reject(request.signal.reason))),
    });
    const aborted = await rejectionOf(hanging.get("doc", "x", { signal: AbortSignal.timeout(50) }));
    expect(aborted).toMatchObject({ name: "TimeoutError" });
    expect(await rejectionOf(db.get("doc", "x", { signal: AbortSignal.abort("already") }))).toBe("already");
  });

  it("sends the bearer token", async () => {
    const { fetch, sent } = recordingFetch(() => problemResponse(404, "entity-not-found"));
    await rejectionOf(createClient({ baseUrl, token: "s3cret", fetch }).get("doc", "x"));
    expect(sent[0]?.headers.get("Authorization")).toBe("Bearer s3cret");
  });
});
