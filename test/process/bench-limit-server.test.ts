import { join } from "node:path";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BenchServer } from "../../bench/bench-server.js";
import { preload } from "../../bench/preload.js";
import { ENTITY_TYPE, entityId } from "../../bench/workload.js";
import { tempDir } from "../support/temp-dir.js";
import { createTestApp, type TestApp } from "../support/test-app.js";

const ENTITIES = 250;
const path = (index: number) => `/v1/entities/${ENTITY_TYPE}/${entityId(index)}`;
const JSON_TYPE = "application/json";

/** The parts of an entity that must agree between two stores (the timestamps are each store's own). */
function comparable(text: string): { type: string; id: string; version: number; data: unknown } {
  const { type, id, version, data } = JSON.parse(text) as { type: string; id: string; version: number; data: unknown };
  return { type, id, version, data };
}

/*
 * The limit baseline is only a fair ceiling if it does apostate's work for the same requests:
 * the same answers from the same preloaded files, and nothing shared between its copy and them.
 */
describe("the bench's limit server", () => {
  const dir = tempDir();
  let apostate: TestApp;
  let limit: BenchServer;
  const send = (target: string, init?: RequestInit) => fetch(limit.url + target, init);

  beforeAll(async () => {
    apostate = await createTestApp();
    await preload(apostate.dataDir, ENTITIES);
    // One worker, so a replayed key reaches the copy that recorded it.
    limit = await BenchServer.limit(join(dir.path, "limit.log"), 1, apostate.dataDir, join(dir.path, "copies"));
  });

  afterAll(async () => {
    await limit?.stop();
    apostate?.close();
    dir.remove();
  });

  it("answers a GET with apostate's bytes and ETag", async () => {
    for (const index of [0, 17, ENTITIES - 1]) {
      const expected = await request(apostate.app).get(path(index)).expect(200);
      const response = await send(path(index));
      expect(response.status).toBe(200);
      expect(response.headers.get("etag")).toBe(expected.headers.etag);
      expect(await response.text()).toBe(expected.text);
    }
  });

  it("serves the first list page with apostate's items in apostate's order", async () => {
    const expected = await request(apostate.app).get(`/v1/entities/${ENTITY_TYPE}`).expect(200);
    const response = await send(`/v1/entities/${ENTITY_TYPE}`);
    expect(response.status).toBe(200);
    const page = (await response.json()) as { items: unknown[]; nextCursor: string | null };
    expect(page.items).toHaveLength(100);
    expect(page.items).toEqual((expected.body as { items: unknown[] }).items);
    expect(page.nextCursor).toBe(entityId(99));
  });

  it("writes the versions and data apostate writes for PUT, PATCH and ops", async () => {
    const steps: { method: "PUT" | "PATCH" | "POST"; suffix: string; type: string; body: unknown }[] = [
      { method: "PUT", suffix: "", type: JSON_TYPE, body: { balance: 5, name: "x" } },
      { method: "PATCH", suffix: "", type: "application/merge-patch+json", body: { name: null, tags: ["a"] } },
      { method: "POST", suffix: "/ops", type: JSON_TYPE, body: { do: [{ op: "inc", path: "/balance", value: 2 }] } },
    ];
    for (const step of steps) {
      const target = path(3) + step.suffix;
      const expected = await request(apostate.app)
        [step.method === "POST" ? "post" : step.method === "PUT" ? "put" : "patch"](target)
        .set("Content-Type", step.type)
        .send(JSON.stringify(step.body));
      const response = await send(target, {
        method: step.method,
        headers: { "Content-Type": step.type },
        body: JSON.stringify(step.body),
      });
      expect(response.status).toBe(expected.status);
      expect(response.headers.get("etag")).toBe(expected.headers.etag);
      expect(comparable(await response.text())).toEqual(comparable(expected.text));
    }
    expect(comparable(await (await send(path(3))).text())).toEqual({
      type: ENTITY_TYPE,
      id: entityId(3),
      version: 4,
      data: { balance: 7, tags: ["a"] },
    });
  });

  it("applies a keyed ops request once and replays its recorded answer", async () => {
    const ops = {
      method: "POST",
      headers: { "Content-Type": JSON_TYPE, "Idempotency-Key": "once" },
      body: JSON.stringify({ do: [{ op: "inc", path: "/balance", value: 1 }] }),
    };
    const first = await send(`${path(5)}/ops`, ops);
    const firstBody = await first.text();
    const again = await send(`${path(5)}/ops`, ops);
    expect(first.status).toBe(200);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    expect(again.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.headers.get("etag")).toBe('"2"');
    expect(await again.text()).toBe(firstBody);
    expect(comparable(await (await send(path(5))).text())).toMatchObject({ version: 2, data: { balance: 1001 } });
  });

  it("writes only its own copy of the data", async () => {
    await send(path(8), { method: "PUT", headers: { "Content-Type": JSON_TYPE }, body: "{}" });
    const untouched = await request(apostate.app).get(path(8)).expect(200);
    expect(comparable(untouched.text)).toMatchObject({ version: 1 });
  });

  it.each([
    ["an unknown route", "/v2/entities/bench/u0000001", {}, 404],
    ["a missing entity", `/v1/entities/${ENTITY_TYPE}/nobody`, {}, 404],
    [
      "ops on a missing entity",
      `/v1/entities/${ENTITY_TYPE}/nobody/ops`,
      { method: "POST", body: '{"do":[{"op":"inc","path":"/n","value":1}]}' },
      404,
    ],
    ["malformed JSON", path(1), { method: "PUT", body: "{bad" }, 400],
    ["an unserved method", path(1), { method: "DELETE" }, 404],
    ["a path past the entity", `${path(1)}/ops/more`, { method: "POST", body: "{}" }, 404],
  ])("refuses %s", async (_name, target, init: RequestInit, status) => {
    const response = await send(target, init);
    expect(response.status).toBe(status);
    await response.arrayBuffer();
    expect(comparable(await (await send(path(1))).text())).toMatchObject({ version: 1 });
  });
});
