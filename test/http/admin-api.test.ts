import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { components } from "../../client/generated/openapi.js";
import { slotOf } from "../../schema/placement.js";
import { expectProblem } from "../support/problem.js";
import { createTestApp, type TestApp } from "../support/test-app.js";

type ShardInfo = components["schemas"]["ShardInfo"];
type ShardKey = components["schemas"]["ShardKey"];

let t: TestApp;
const live = new Map<string, number>(); // "type/id" → version
const writesPerShard = new Map<number, number>();
const keyedPerShard = new Map<number, number>();
const shardOf = (type: string, id: string) => t.shards.shardFor(type, id).placement.shard;
const bump = (counts: Map<number, number>, shard: number) => counts.set(shard, (counts.get(shard) ?? 0) + 1);

beforeAll(async () => {
  t = await createTestApp({ shardCount: 4 });
  // Three types, puts, updates and deletes, some with idempotency keys: every figure has something to count.
  for (let i = 0; i < 120; i += 1) {
    const type = ["account", "order", "item"][i % 3] as string;
    const id = `k${i}`;
    const put = request(t.app).put(`/v1/entities/${type}/${id}`);
    if (i % 4 === 0) put.set("Idempotency-Key", `key-${i}`);
    expect((await put.send({ i })).status).toBe(201);
    bump(writesPerShard, shardOf(type, id));
    if (i % 4 === 0) bump(keyedPerShard, shardOf(type, id));
    live.set(`${type}/${id}`, 1);
  }
  for (let i = 0; i < 120; i += 10) {
    const type = ["account", "order", "item"][i % 3] as string;
    expect((await request(t.app).put(`/v1/entities/${type}/k${i}`).send({ again: true })).status).toBe(200);
    bump(writesPerShard, shardOf(type, `k${i}`));
    live.set(`${type}/k${i}`, 2);
  }
  for (let i = 1; i < 120; i += 15) {
    const type = ["account", "order", "item"][i % 3] as string;
    expect((await request(t.app).delete(`/v1/entities/${type}/k${i}`)).status).toBe(204);
    bump(writesPerShard, shardOf(type, `k${i}`));
    live.delete(`${type}/k${i}`);
  }
});
afterAll(() => t.close());

async function listShards(): Promise<ShardInfo[]> {
  const res = await request(t.app).get("/admin/shards").expect(200);
  return (res.body as { shards: ShardInfo[] }).shards;
}

async function allKeys(shard: number, limit: number): Promise<ShardKey[]> {
  const keys: ShardKey[] = [];
  let cursor: string | null = null;
  do {
    const res = await request(t.app)
      .get(`/admin/shards/${shard}/entities`)
      .query({ limit, ...(cursor && { cursor }) })
      .expect(200);
    const page = res.body as { items: ShardKey[]; nextCursor: string | null };
    expect(page.items.length).toBeLessThanOrEqual(limit);
    keys.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return keys;
}

describe("GET /admin/shards", () => {
  it("lists every shard with figures that add up to the entities written", async () => {
    const shards = await listShards();
    expect(shards.map((s) => s.shard)).toEqual([0, 1, 2, 3]);
    expect(shards.map((s) => s.slots)).toEqual([
      { from: 0, to: 1023 },
      { from: 1024, to: 2047 },
      { from: 2048, to: 3071 },
      { from: 3072, to: 4095 },
    ]);
    expect(shards.reduce((sum, s) => sum + s.entities, 0)).toBe(live.size);
    for (const info of shards) {
      const inShard = [...live.keys()].filter((key) => shardOf(...(key.split("/") as [string, string])) === info.shard);
      expect(info.entities).toBe(inShard.length);
      // Every committed write advances the sequence by exactly one.
      expect(info.sequence).toBe(writesPerShard.get(info.shard) ?? 0);
      expect(info.idempotencyRecords).toBe(keyedPerShard.get(info.shard) ?? 0);
      expect(info.fileBytes).toBeGreaterThan(0);
      expect(info.walBytes).toBeGreaterThanOrEqual(0);
      expect(info.lastWriteAt === null ? 0 : Date.parse(info.lastWriteAt)).toBeGreaterThan(Date.now() - 60_000);
    }
  });

  it("answers one shard with the same figures as the list", async () => {
    const [, second] = await listShards();
    const res = await request(t.app).get("/admin/shards/1").expect(200);
    expect(res.body).toEqual(second);
  });
});

describe("GET /admin/shards/{shard}/entities", () => {
  it("pages through exactly the live keys of the shard, in type-then-id order", async () => {
    const seen = new Set<string>();
    for (const { shard } of await listShards()) {
      const keys = await allKeys(shard, 7);
      const sorted = [...keys].sort((a, b) => (a.type === b.type ? (a.id < b.id ? -1 : 1) : a.type < b.type ? -1 : 1));
      expect(keys).toEqual(sorted);
      for (const key of keys) {
        expect(key.slot).toBe(slotOf(key.type, key.id));
        expect(key.version).toBe(live.get(`${key.type}/${key.id}`));
        seen.add(`${key.type}/${key.id}`);
      }
      expect(keys.length).toBe((await request(t.app).get(`/admin/shards/${shard}`)).body.entities);
    }
    expect([...seen].sort()).toEqual([...live.keys()].sort());
  });

  it("refuses a damaged cursor and a bad limit", async () => {
    expectProblem(await request(t.app).get("/admin/shards/0/entities?cursor=bm90LWpzb24"), 400, "invalid-cursor");
    expectProblem(await request(t.app).get("/admin/shards/0/entities?limit=0"), 400, "invalid-query");
    expectProblem(await request(t.app).get("/admin/shards/0/entities?limit=1001"), 400, "invalid-query");
  });
});

describe("GET /admin/locate/{type}/{id}", () => {
  it("agrees with the shard that lists each key", async () => {
    for (const { shard } of await listShards()) {
      for (const key of await allKeys(shard, 1000)) {
        const res = await request(t.app)
          .get(`/admin/locate/${key.type}/${encodeURIComponent(key.id)}`)
          .expect(200);
        expect(res.body).toEqual({ type: key.type, id: key.id, slot: key.slot, shard, exists: true });
      }
    }
  });

  it("answers 200 with exists: false for an absent or deleted key", async () => {
    for (const [type, id] of [
      ["account", "never-written"],
      ["item", "k1"],
    ] as const) {
      const res = await request(t.app).get(`/admin/locate/${type}/${id}`).expect(200);
      expect(res.body).toEqual({ type, id, slot: slotOf(type, id), shard: shardOf(type, id), exists: false });
    }
  });

  it("refuses a key outside the allowed form", async () => {
    expectProblem(await request(t.app).get("/admin/locate/Bad/x"), 400, "invalid-key");
  });
});

describe("shard numbers", () => {
  it("answers 404 for a shard the store does not have and 400 for anything but a number", async () => {
    for (const [method, suffix] of [
      ["get", ""],
      ["get", "/entities"],
      ["post", "/check"],
      ["post", "/backup"],
    ] as const) {
      expectProblem(await request(t.app)[method](`/admin/shards/4${suffix}`), 404, "shard-not-found");
      for (const bad of ["-1", "x", "1.5", "..%2F..%2Fetc", "4096"]) {
        const res = await request(t.app)[method](`/admin/shards/${bad}${suffix}`);
        expect(res.status, `${method} ${bad}${suffix}`).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
      }
    }
  });
});

describe("POST /admin/shards/{shard}/check", () => {
  it("reports a healthy shard as ok", async () => {
    const res = await request(t.app).post("/admin/shards/2/check").expect(200);
    expect(res.body).toEqual({ shard: 2, ok: true, messages: [] });
  });
});

describe("health", () => {
  it("answers /healthz and /readyz without a token", async () => {
    expect((await request(t.app).get("/healthz").expect(200)).body).toEqual({ status: "ok" });
    expect((await request(t.app).get("/readyz").expect(200)).body).toEqual({ status: "ok", shards: 4 });
  });
});
