import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import {
  createClient,
  EntityNotFoundError,
  NetworkError,
  ProblemError,
  type ApostateClient,
  type Collection,
  type Entity,
  type EntityPage,
  type TypedEntity,
  type TypedEntityPage,
} from "../../client/index.js";
import { problemResponse, recordingFetch, rejectionOf, startServerAndClient } from "../support/client-helpers.js";

interface Account {
  balance: number;
  owner: string;
  tags?: string[];
}

let baseUrl = "";
let db: ApostateClient;
let stop: () => Promise<void>;

beforeAll(async () => {
  ({ baseUrl, db, stop } = await startServerAndClient({ baseDelayMs: 5, maxDelayMs: 50 }));
});
afterAll(() => stop());

describe("db.collection<T>(type)", () => {
  it("types every method's data as T", () => {
    const accounts = db.collection<Account>("account");
    expectTypeOf(accounts).toEqualTypeOf<Collection<Account>>();
    expectTypeOf(accounts.get).returns.resolves.toEqualTypeOf<TypedEntity<Account>>();
    expectTypeOf(accounts.get).returns.resolves.toHaveProperty("data").toEqualTypeOf<Account>();
    expectTypeOf(accounts.get).returns.resolves.toHaveProperty("version").toEqualTypeOf<number>();
    expectTypeOf(accounts.put).parameter(1).toEqualTypeOf<Account>();
    expectTypeOf(accounts.put).returns.resolves.toEqualTypeOf<TypedEntity<Account>>();
    expectTypeOf(accounts.patch).returns.resolves.toEqualTypeOf<TypedEntity<Account>>();
    expectTypeOf(accounts.jsonPatch).returns.resolves.toEqualTypeOf<TypedEntity<Account>>();
    expectTypeOf(accounts.ops).returns.resolves.toEqualTypeOf<TypedEntity<Account>>();
    expectTypeOf(accounts.delete).returns.resolves.toEqualTypeOf<void>();
    expectTypeOf(accounts.listPage).returns.resolves.toEqualTypeOf<TypedEntityPage<Account>>();
    expectTypeOf(accounts.list).returns.toEqualTypeOf<AsyncGenerator<TypedEntity<Account>, void, undefined>>();
    expectTypeOf(accounts.modify).parameter(1).parameter(0).toEqualTypeOf<Account>();
    expectTypeOf(accounts.modify).parameter(1).returns.toEqualTypeOf<Account | Promise<Account>>();
    // T must be an object: the data of an entity is a JSON object.
    // @ts-expect-error -- a number is no entity data
    db.collection<number>("n");
    // @ts-expect-error -- a string is no entity data
    db.collection<string>("s");
    // The untyped methods stay as they were.
    expectTypeOf(db.get).returns.resolves.toEqualTypeOf<Entity>();
    expectTypeOf(db.listPage).returns.resolves.toEqualTypeOf<EntityPage>();
  });

  it("refuses data that is not a T, at compile time", () => {
    const accounts = db.collection<Account>("account");
    const wrong = () => {
      // @ts-expect-error -- balance must be a number
      void accounts.put("x", { balance: "lots", owner: "x" });
      // @ts-expect-error -- owner is required
      void accounts.put("x", { balance: 1 });
      // @ts-expect-error -- modify must return an Account
      void accounts.modify("x", (account) => ({ balance: account.owner }));
    };
    expect(wrong).toBeTypeOf("function");
  });

  it("does what the untyped methods do, against a real server", async () => {
    const accounts = db.collection<Account>("typed-account");
    expect(accounts.type).toBe("typed-account");
    const created = await accounts.put("alice", { balance: 100, owner: "Alice" });
    expect(created).toMatchObject({ type: "typed-account", id: "alice", version: 1, data: { balance: 100, owner: "Alice" } });
    const read = await accounts.get("alice");
    expect(read.data.balance + 1).toBe(101);
    const patched = await accounts.patch("alice", { tags: ["vip"] }, { ifMatch: 1 });
    expect(patched.data).toEqual({ balance: 100, owner: "Alice", tags: ["vip"] });
    const opened = await accounts.ops("alice", { do: [{ op: "inc", path: "/balance", value: -10 }] });
    expect(opened.data.balance).toBe(90);
    const jsonPatched = await accounts.jsonPatch("alice", [{ op: "replace", path: "/owner", value: "A." }]);
    expect(jsonPatched).toMatchObject({ version: 4, data: { owner: "A." } });
    const modified = await accounts.modify("alice", (account, entity) => {
      expect(entity.version).toBe(4);
      return { ...account, balance: account.balance * 2 };
    });
    expect(modified).toMatchObject({ version: 5, data: { balance: 180 } });
    expect(await db.get("typed-account", "alice")).toEqual(modified);

    await accounts.put("bob", { balance: 1, owner: "Bob" });
    const listed: string[] = [];
    for await (const account of accounts.list({ pageSize: 1 })) listed.push(`${account.id}:${account.data.owner}`);
    expect(listed).toEqual(["alice:A.", "bob:Bob"]);
    const page = await accounts.listPage({ limit: 1 });
    expect(page.items.map((entity) => entity.id)).toEqual(["alice"]);
    expect(page.nextCursor).toEqual(expect.any(String));

    await accounts.delete("bob", { ifMatch: 1 });
    expect(await rejectionOf(accounts.get("bob"))).toBeInstanceOf(EntityNotFoundError);
  });
});

describe("db.listPage(type, { prefix, limit, cursor })", () => {
  it("walks the pages with nextCursor, null after the last", async () => {
    const ids = ["p-a", "p-b", "p-c", "p-d", "p-e", "q-a"];
    for (const id of ids) await db.put("paged", id, { id });
    const seen: string[][] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await db.listPage("paged", { prefix: "p-", limit: 2, cursor });
      seen.push(page.items.map((entity) => entity.id));
      if (page.nextCursor === null) break;
      cursor = page.nextCursor;
    }
    expect(seen).toEqual([["p-a", "p-b"], ["p-c", "p-d"], ["p-e"]]);
    expect(await db.listPage("paged", { prefix: "none-" })).toEqual({ items: [], nextCursor: null });
  });

  it("refuses a cursor of another listing, and a limit out of range", async () => {
    const first = await db.listPage("paged", { limit: 1 });
    const foreign = await rejectionOf(db.listPage("other", { cursor: first.nextCursor as string }));
    expect(foreign).toBeInstanceOf(ProblemError);
    expect((foreign as ProblemError).code).toBe("invalid-cursor");
    const tooMany = await rejectionOf(db.listPage("paged", { limit: 1001 }));
    expect((tooMany as ProblemError).status).toBe(400);
  });
});

// These clients count requests or pick them by index: routing "base" keeps the one map load of
// the default routing out of the count (test/client/routing.test.ts covers routing).
describe("a per-call retry override", () => {
  it("replaces the client's policy for one call only", async () => {
    const recorder = recordingFetch(() => problemResponse(503, "unavailable"));
    const patient = createClient({
      baseUrl,
      fetch: recorder.fetch,
      routing: "base",
      retry: { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 2 },
    });

    const once = await rejectionOf(patient.get("account", "x", { retry: { maxAttempts: 1 } }));
    expect((once as ProblemError).status).toBe(503);
    expect(recorder.sent).toHaveLength(1);

    await rejectionOf(patient.put("account", "x", {}, { retry: { maxAttempts: 2 } }));
    expect(recorder.sent).toHaveLength(3);
    // The same idempotency key on both attempts of the put.
    expect(recorder.sent[1]?.idempotencyKey).toBe(recorder.sent[2]?.idempotencyKey);

    // Without an override, the client's own four attempts.
    await rejectionOf(patient.delete("account", "x"));
    expect(recorder.sent).toHaveLength(7);
  });

  it("applies to every method, listPage, list, collection and modify included", async () => {
    const recorder = recordingFetch(() => {
      throw new TypeError("fetch failed");
    });
    const client = createClient({
      baseUrl,
      fetch: recorder.fetch,
      routing: "base",
      retry: { maxAttempts: 5, baseDelayMs: 1, maxDelayMs: 2 },
    });
    const once = { retry: { maxAttempts: 1 } };
    const calls: [string, () => Promise<unknown>][] = [
      ["patch", () => client.patch("a", "b", {}, once)],
      ["jsonPatch", () => client.jsonPatch("a", "b", [], once)],
      ["ops", () => client.ops("a", "b", { do: [] }, once)],
      ["listPage", () => client.listPage("a", once)],
      ["list", () => client.list("a", once).next()],
      ["modify", () => client.modify("a", "b", (data) => data, once)],
      ["collection get", () => client.collection<Account>("a").get("b", once)],
    ];
    for (const [name, call] of calls) {
      const before = recorder.sent.length;
      expect(await rejectionOf(call()), name).toBeInstanceOf(NetworkError);
      expect(recorder.sent.length - before, name).toBe(1);
    }
  });

  it("a longer deadline for one call lets it wait out a Retry-After the client's deadline would not", async () => {
    const recorder = recordingFetch((_request, index) =>
      index <= 1 ? problemResponse(503, "unavailable", { "Retry-After": "1" }) : undefined,
    );
    const hasty = createClient({ baseUrl, fetch: recorder.fetch, routing: "base", retry: { deadlineMs: 200 } });
    await db.put("account", "late", { n: 1 });
    expect(await rejectionOf(hasty.get("account", "late"))).toBeInstanceOf(ProblemError);
    const read = await hasty.get("account", "late", { retry: { deadlineMs: 5_000 } });
    expect(read.data).toEqual({ n: 1 });
    expect(recorder.sent).toHaveLength(3);
  });
});
