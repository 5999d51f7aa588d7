import { pino } from "pino";
import { Registry } from "prom-client";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdempotencyPurger } from "../../server/storage/idempotency-purger.js";
import { purgeMetrics } from "../../server/metrics/purge-metrics.js";
import { createTestApp, type TestApp } from "../support/test-app.js";
import { parsePrometheusText, sumOf } from "../support/prometheus-text.js";

const RETENTION_MS = 60_000;
const RECORDS = 450;

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ shardCount: 1 });
  for (let i = 0; i < RECORDS; i += 1) {
    await request(t.app).put(`/v1/entities/doc/d${i}`).set("Idempotency-Key", `k${i}`).send({ i }).expect(201);
  }
});
afterAll(() => t.close());

const records = async () => (await request(t.app).get("/admin/shards/0").expect(200)).body.idempotencyRecords as number;

describe("idempotency purge", () => {
  it("keeps records inside the retention window, deletes expired ones in batches, and counts them in metrics", async () => {
    const registry = new Registry();
    const purger = new IdempotencyPurger(t.shards, RETENTION_MS, pino({ level: "silent" }), purgeMetrics(registry));

    expect(await purger.purgeExpired(Date.now())).toBe(0);
    expect(await records()).toBe(RECORDS);

    expect(await purger.purgeExpired(Date.now() + RETENTION_MS + 1_000)).toBe(RECORDS);
    expect(await records()).toBe(0);

    const samples = parsePrometheusText(await registry.metrics());
    expect(sumOf(samples, "apostate_idempotency_purged_total", { shard: "0" })).toBe(RECORDS);
    // 200 + 200 + 50, plus the first pass's one empty batch: small transactions, never one big one.
    expect(sumOf(samples, "apostate_idempotency_purge_batches_total", { shard: "0" })).toBe(4);
  });

  it("after a purge, the same key on the same entity is a new request", async () => {
    const res = await request(t.app).put("/v1/entities/doc/d0").set("Idempotency-Key", "k0").send({ i: 0 }).expect(200);
    expect(res.headers["idempotent-replayed"]).toBeUndefined();
    expect(res.body.version).toBe(2);
  });

  it("stop() ends the background timer and waits for a pass in progress", async () => {
    const purger = new IdempotencyPurger(t.shards, RETENTION_MS, pino({ level: "silent" }));
    purger.start();
    await expect(purger.stop()).resolves.toBeUndefined();
  });
});
