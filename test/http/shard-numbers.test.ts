import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parsed, send } from "../support/http.js";
import { expectProblem } from "../support/problem.js";
import { listenTestApp, type TestApp } from "../support/test-app.js";

let t: TestApp & { url: string };
beforeAll(async () => {
  t = await listenTestApp({ shardCount: 8 });
});
afterAll(() => t.close());

const routes = [
  ["GET", ""],
  ["GET", "/entities"],
  ["POST", "/check"],
  ["POST", "/backup"],
] as const;

describe("admin shard numbers", () => {
  it.each(["8", "9999", "4096", "99999999999999999999"])(
    "shard %s, which the store does not have, is 404 shard-not-found",
    async (shard) => {
      for (const [method, suffix] of routes) {
        const reply = await send(t.url, method, `/admin/shards/${shard}${suffix}`);
        expectProblem(parsed(reply), 404, "shard-not-found", /^there is no shard .*; this store has shards 0-7$/);
      }
      expect(existsSync(join(t.dataDir, "backups"))).toBe(false);
    },
  );

  it.each(["abc", "-1", "1.5", "0x1", "1e1", "+1", "%201", "%ZZ", "07a"])(
    "shard %s is 400 invalid-query naming shard",
    async (shard) => {
      for (const [method, suffix] of routes) {
        const reply = await send(t.url, method, `/admin/shards/${shard}${suffix}`);
        expectProblem(parsed(reply), 400, "invalid-query", /^\/params\/shard: /);
      }
      expect(existsSync(join(t.dataDir, "backups"))).toBe(false);
    },
  );

  it("the last shard is there", async () => {
    expect((await send(t.url, "GET", "/admin/shards/7")).status).toBe(200);
  });
});
