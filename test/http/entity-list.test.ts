import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { slotOf } from "../../schema/placement.js";
import { expectProblem } from "../support/problem.js";
import { createTestApp, type TestApp } from "../support/test-app.js";

let t: TestApp;
const ids = Array.from({ length: 230 }, (_, i) => `item-${String(i).padStart(4, "0")}`);

beforeAll(async () => {
  t = await createTestApp();
  for (const id of ids) await request(t.app).put(`/v1/entities/thing/${id}`).send({ id });
  await request(t.app).put("/v1/entities/other/item-0001").send({});
  await request(t.app).put("/v1/entities/thing/x_y").send({});
  await request(t.app).put("/v1/entities/thing/xay").send({});
  await request(t.app).delete("/v1/entities/thing/item-0005");
});
afterAll(() => t.close());

async function listAll(query: string, limit: number): Promise<{ ids: string[]; pages: number }> {
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const url: string = `/v1/entities/thing?limit=${limit}${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const res = await request(t.app).get(url);
    expect(res.status).toBe(200);
    expect(res.body.items.length).toBeLessThanOrEqual(limit);
    seen.push(...res.body.items.map((item: { id: string }) => item.id));
    cursor = res.body.nextCursor;
    pages += 1;
  } while (cursor !== null);
  return { ids: seen, pages };
}

describe("GET /v1/entities/{type}", () => {
  it("spreads the entities over every shard (so the merge is really exercised)", () => {
    const shards = new Set(ids.map((id) => t.shards.shardFor("thing", id).placement.shard));
    expect(shards.size).toBe(8);
    expect(new Set(ids.map((id) => slotOf("thing", id))).size).toBeGreaterThan(200);
  });

  it("returns every live entity exactly once, in byte order, across pages", async () => {
    const { ids: seen, pages } = await listAll("&prefix=item-", 17);
    const expected = ids.filter((id) => id !== "item-0005");
    expect(seen).toEqual(expected);
    expect(pages).toBe(Math.ceil(expected.length / 17));
  });

  it("defaults to 100 items and returns full representations", async () => {
    const res = await request(t.app).get("/v1/entities/thing");
    expect(res.body.items).toHaveLength(100);
    expect(res.body.items[0]).toMatchObject({ type: "thing", id: "item-0000", version: 1, data: { id: "item-0000" } });
    expect(typeof res.body.nextCursor).toBe("string");
  });

  it("gives nextCursor null on the last page", async () => {
    const res = await request(t.app).get("/v1/entities/thing?limit=1000");
    expect(res.body.items).toHaveLength(231);
    expect(res.body.nextCursor).toBeNull();
  });

  it("treats _ in a prefix literally (no LIKE wildcards), and refuses % which no id can hold", async () => {
    expectProblem(await request(t.app).get("/v1/entities/thing?prefix=x%25"), 400, "invalid-query");
    const underscore = await request(t.app).get("/v1/entities/thing?prefix=x_");
    expect(underscore.body.items.map((item: { id: string }) => item.id)).toEqual(["x_y"]);
  });

  it("is an empty page for a type with no entities", async () => {
    const res = await request(t.app).get("/v1/entities/nothing");
    expect(res.body).toEqual({ items: [], nextCursor: null });
  });

  it("refuses forged, damaged and foreign cursors", async () => {
    const first = await request(t.app).get("/v1/entities/thing?limit=2");
    const cursor: string = first.body.nextCursor;
    const [payload, signature] = cursor.split(".") as [string, string];
    const forged = `${Buffer.from(JSON.stringify(["thing", "", "item-0100"])).toString("base64url")}.${signature}`;
    const cases = [
      `/v1/entities/thing?cursor=${encodeURIComponent(forged)}`,
      `/v1/entities/thing?cursor=${encodeURIComponent(`${payload}.AAAA${signature.slice(4)}`)}`,
      `/v1/entities/thing?cursor=not-a-cursor`,
      `/v1/entities/other?cursor=${encodeURIComponent(cursor)}`,
      `/v1/entities/thing?prefix=item&cursor=${encodeURIComponent(cursor)}`,
    ];
    for (const url of cases) expectProblem(await request(t.app).get(url), 400, "invalid-cursor");
  });

  it.each(["limit=0", "limit=1001", "limit=abc", "limit=1.5", "prefix=a%20b", "unknown=1"])(
    "refuses %s as invalid-query",
    async (query) => {
      expectProblem(await request(t.app).get(`/v1/entities/thing?${query}`), 400, "invalid-query");
    },
  );
});
