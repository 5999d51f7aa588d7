import type { RequestListener } from "node:http";
import { pino } from "pino";
import request from "supertest";
import { afterEach, describe, expect, it } from "vitest";
import { createApp } from "../../server/app.js";
import { EntityStore } from "../../server/entities/entity-store.js";
import { openDataDirectory, type ShardSet } from "../../server/storage/data-directory.js";
import { expectProblem } from "../support/problem.js";
import { tempDir } from "../support/temp-dir.js";

const cleanup: (() => void)[] = [];
afterEach(() => cleanup.splice(0).forEach((fn) => fn()));

async function app(isStopping: () => boolean): Promise<{ app: RequestListener; shards: ShardSet }> {
  const dir = tempDir();
  const shards = await openDataDirectory(dir.path, { shardCount: 3, durability: "process", busyTimeoutMs: 5000, verify: false });
  cleanup.push(() => {
    shards.close();
    dir.remove();
  });
  const logger = pino({ level: "silent" });
  const created = await createApp({
    store: new EntityStore(shards),
    shards,
    logger,
    bodyLimit: 1024,
    token: undefined,
    adminToken: undefined,
    isStopping,
  });
  return { app: created, shards };
}

describe("/readyz", () => {
  it("turns 503 with Retry-After once shutdown begins, while /healthz stays 200", async () => {
    let stopping = false;
    const { app: served } = await app(() => stopping);
    expect((await request(served).get("/readyz").expect(200)).body).toEqual({ status: "ok", shards: 3 });
    stopping = true;
    const res = await request(served).get("/readyz");
    expectProblem(res, 503, "unavailable");
    expect(res.headers["retry-after"]).toBe("5");
    expect(res.body.detail).toBe("the server is shutting down");
    await request(served).get("/healthz").expect(200);
  });

  it("turns 503 naming the shard that is not open for writing", async () => {
    const { app: served, shards } = await app(() => false);
    shards.shards[1]?.close();
    const res = await request(served).get("/readyz");
    expectProblem(res, 503, "unavailable");
    expect(res.body.detail).toBe("not open for writing: shard 1");
  });
});
