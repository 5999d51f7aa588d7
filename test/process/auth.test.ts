import { existsSync } from "node:fs";
import { join } from "node:path";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectProblem } from "../support/problem.js";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";
import { createTestApp, type TestApp } from "../support/test-app.js";

const DATA_TOKEN = "data-token-0123456789";
const ADMIN_TOKEN = "admin-token-9876543210";

type Method = "get" | "put" | "patch" | "post" | "delete";
type Route = { method: Method; path: string; body?: object; contentType?: string };

/** Every route of each plane, each with a request that would change something if it got through. */
const DATA_ROUTES: Route[] = [
  { method: "get", path: "/v1/entities/account/alice" },
  { method: "put", path: "/v1/entities/account/alice", body: { balance: 1 } },
  { method: "patch", path: "/v1/entities/account/seed", body: { balance: 1 }, contentType: "application/merge-patch+json" },
  {
    method: "patch",
    path: "/v1/entities/account/seed",
    body: [{ op: "add", path: "/x", value: 1 }],
    contentType: "application/json-patch+json",
  },
  { method: "post", path: "/v1/entities/account/alice/ops", body: { do: [{ op: "inc", path: "/n", value: 1 }], upsert: true } },
  { method: "delete", path: "/v1/entities/account/seed" },
  { method: "get", path: "/v1/entities/account" },
  { method: "get", path: "/v1/nowhere" },
];
const ADMIN_ROUTES: Route[] = [
  { method: "get", path: "/admin/shards" },
  { method: "get", path: "/admin/shards/0" },
  { method: "get", path: "/admin/shards/0/entities" },
  { method: "get", path: "/admin/locate/account/seed" },
  { method: "post", path: "/admin/shards/0/check" },
  { method: "post", path: "/admin/shards/0/backup" },
  { method: "get", path: "/metrics" },
  { method: "get", path: "/admin/nowhere" },
];

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ token: DATA_TOKEN, adminToken: ADMIN_TOKEN });
  await request(t.app).put("/v1/entities/account/seed").auth(DATA_TOKEN, { type: "bearer" }).send({ balance: 0 }).expect(201);
});
afterAll(() => t.close());

function send(route: Route, authorization: string | undefined, app = t.app) {
  let req = request(app)[route.method](route.path);
  if (authorization !== undefined) req = req.set("Authorization", authorization);
  if (route.body) req = req.set("Content-Type", route.contentType ?? "application/json").send(JSON.stringify(route.body));
  return req;
}

const cases = (own: string, other: string): [string, string | undefined][] => [
  ["no token", undefined],
  ["a wrong token", `Bearer ${own}x`],
  ["the token as a prefix", `Bearer ${own.slice(0, -1)}`],
  ["another scheme", `Basic ${Buffer.from(`user:${own}`).toString("base64")}`],
  ["an empty bearer", "Bearer "],
  ["the other plane's token", `Bearer ${other}`],
];

describe.each([
  ["/v1", DATA_ROUTES, DATA_TOKEN, ADMIN_TOKEN],
  ["/admin and /metrics", ADMIN_ROUTES, ADMIN_TOKEN, DATA_TOKEN],
] as const)("%s", (_plane, routes, own, other) => {
  it.each(cases(own, other))("answers 401 with a problem to every route given %s", async (_name, authorization) => {
    for (const route of routes) {
      const res = await send(route, authorization);
      expectProblem(res, 401, "unauthorized");
      expect(res.headers["www-authenticate"]).toBe('Bearer realm="apostate"');
    }
  });

  it("lets the right token through (the scheme in any case)", async () => {
    for (const route of routes) {
      const res = await send(route, `bearer ${own}`);
      expect(res.status, `${route.method} ${route.path}`).not.toBe(401);
    }
  });
});

describe("refused requests", () => {
  it("change nothing: no entity, no sequence step, no backup", async () => {
    const fresh = await createTestApp({ token: DATA_TOKEN, adminToken: ADMIN_TOKEN });
    try {
      for (const [routes, own, other] of [
        [DATA_ROUTES, DATA_TOKEN, ADMIN_TOKEN],
        [ADMIN_ROUTES, ADMIN_TOKEN, DATA_TOKEN],
      ] as const) {
        for (const route of routes) {
          for (const [, authorization] of cases(own, other)) {
            expect((await send(route, authorization, fresh.app)).status).toBe(401);
          }
        }
      }
      const res = await request(fresh.app).get("/admin/shards").auth(ADMIN_TOKEN, { type: "bearer" }).expect(200);
      const { shards } = res.body as { shards: { sequence: number; entities: number; idempotencyRecords: number }[] };
      expect(shards.every((shard) => shard.sequence === 0 && shard.entities === 0 && shard.idempotencyRecords === 0)).toBe(true);
      expect(existsSync(join(fresh.dataDir, "backups"))).toBe(false);
    } finally {
      fresh.close();
    }
  });
});

describe("health probes", () => {
  it("are open without a token", async () => {
    await request(t.app).get("/healthz").expect(200);
    await request(t.app).get("/readyz").expect(200);
  });
});

describe("start-up", () => {
  it.each([
    ["no tokens", []],
    ["only --token", ["--token", DATA_TOKEN]],
    ["only --admin-token", ["--admin-token", ADMIN_TOKEN]],
  ])("refuses a non-loopback host with %s", async (_name, tokens) => {
    const dir = tempDir();
    try {
      const { code, output } = await ServerProcess.startFailing({ dataDir: dir.path, args: ["--host", "0.0.0.0", ...tokens] });
      expect(code).not.toBe(0);
      expect(output).toContain("--host 0.0.0.0 is not a loopback address: set --token and --admin-token");
      expect(existsSync(join(dir.path, "manifest.json"))).toBe(false);
    } finally {
      dir.remove();
    }
  });

  it("refuses the same token for both planes, and a token that cannot be sent", async () => {
    const dir = tempDir();
    try {
      const same = await ServerProcess.startFailing({
        dataDir: dir.path,
        args: ["--token", DATA_TOKEN, "--admin-token", DATA_TOKEN],
      });
      expect(same.code).not.toBe(0);
      expect(same.output).toContain("--token and --admin-token must differ");
      const spaced = await ServerProcess.startFailing({ dataDir: dir.path, env: { APOSTATE_TOKEN: "two words" } });
      expect(spaced.code).not.toBe(0);
      expect(spaced.output).toContain("--token must be 1 to 512 visible ASCII characters");
    } finally {
      dir.remove();
    }
  });
});
