import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bodyOf, jsonRequest, parsed, send } from "../support/http.js";
import { expectProblem } from "../support/problem.js";
import { listenTestApp, type TestApp } from "../support/test-app.js";

/*
 * Requests go out through test/support/http.ts, which sends the path exactly as written: fetch
 * and supertest resolve `.` and `..` segments before sending, as every URL parser does.
 */
let t: TestApp & { url: string };
beforeAll(async () => {
  t = await listenTestApp();
});
afterAll(() => t.close());

describe("the ids . and .. are 400 invalid-key, however they are spelled", () => {
  it.each([".", "..", "%2E", "%2e", "%2e%2E", ".%2E"])("id %s", async (id) => {
    const at = `/v1/entities/dots/${id}`;
    for (const [method, path, options] of [
      ["GET", at, {}],
      ["PUT", at, jsonRequest({})],
      ["PATCH", at, jsonRequest({}, "application/merge-patch+json")],
      ["DELETE", at, {}],
      ["POST", `${at}/ops`, jsonRequest({ do: [], upsert: true })],
      ["GET", `/admin/locate/dots/${id}`, {}],
    ] as const) {
      const reply = await send(t.url, method, path, options);
      expectProblem(parsed(reply), 400, "invalid-key", /^\/params\/id: must match pattern/);
    }
    const list = await send(t.url, "GET", "/v1/entities/dots");
    expect(bodyOf(list)).toEqual({ items: [], nextCursor: null });
  });

  it("ids that merely contain dots are ordinary ids", async () => {
    for (const id of ["...", ".a", "a.", "a..b"]) {
      const reply = await send(t.url, "PUT", `/v1/entities/dotted/${id}`, jsonRequest({ id }));
      expect({ status: reply.status, id: (bodyOf(reply) as { id: string }).id }).toEqual({ status: 201, id });
    }
  });

  it("an id is percent-decoded before it is checked", async () => {
    const reply = await send(t.url, "PUT", "/v1/entities/dotted/%41%2e%42", jsonRequest({}));
    expect({ status: reply.status, id: (bodyOf(reply) as { id: string }).id }).toEqual({ status: 201, id: "A.B" });
    expect((await send(t.url, "GET", "/v1/entities/dotted/A.B")).status).toBe(200);
  });
});

describe("a list cursor that is not one of ours is 400 invalid-cursor, never invalid-query", () => {
  let good = "";
  beforeAll(async () => {
    for (const id of ["a1", "a2", "a3"])
      expect((await send(t.url, "PUT", `/v1/entities/paged/${id}`, jsonRequest({}))).status).toBe(201);
    good = (bodyOf(await send(t.url, "GET", "/v1/entities/paged?limit=1")) as { nextCursor: string }).nextCursor;
  });

  const flip = (cursor: string, at: number) => cursor.slice(0, at) + (cursor[at] === "A" ? "B" : "A") + cursor.slice(at + 1);

  it.each([
    ["garbage", () => "!!!", "paged", ""],
    ["truncated", () => good.slice(0, -3), "paged", ""],
    ["another type's", () => good, "other", ""],
    ["another prefix's", () => good, "paged", "&prefix=a"],
  ])("%s cursor", async (_name, cursor, type, extra) => {
    const reply = await send(t.url, "GET", `/v1/entities/${type}?cursor=${encodeURIComponent(cursor())}${extra}`);
    expectProblem(parsed(reply), 400, "invalid-cursor");
  });

  it("a cursor with any one character flipped", async () => {
    for (let at = 0; at < good.length; at++) {
      const reply = await send(t.url, "GET", `/v1/entities/paged?cursor=${encodeURIComponent(flip(good, at))}`);
      expectProblem(parsed(reply), 400, "invalid-cursor");
    }
  });

  it("the cursor itself still works", async () => {
    const reply = await send(t.url, "GET", `/v1/entities/paged?limit=1&cursor=${encodeURIComponent(good)}`);
    expect((bodyOf(reply) as { items: { id: string }[] }).items.map((item) => item.id)).toEqual(["a2"]);
  });

  it("the admin keys cursor too", async () => {
    const shards = (bodyOf(await send(t.url, "GET", "/admin/shards")) as { shards: { shard: number; entities: number }[] })
      .shards;
    const shard = shards.find((info) => info.entities > 1)?.shard ?? 0;
    const keys = `/admin/shards/${shard}/entities`;
    const adminGood = (bodyOf(await send(t.url, "GET", `${keys}?limit=1`)) as { nextCursor: string }).nextCursor;
    expect(adminGood).toEqual(expect.any(String));
    expect((await send(t.url, "GET", `${keys}?cursor=${encodeURIComponent(adminGood)}`)).status).toBe(200);
    const flipped = [...adminGood].map((_char, at) => flip(adminGood, at));
    for (const cursor of ["!!!", adminGood.slice(0, -3), `${adminGood}.x`, ...flipped]) {
      const reply = await send(t.url, "GET", `${keys}?cursor=${encodeURIComponent(cursor)}`);
      expectProblem(parsed(reply), 400, "invalid-cursor");
    }
  });
});
