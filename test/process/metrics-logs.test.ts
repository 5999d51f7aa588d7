import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";
import { parsePrometheusText, sumOf, type Samples } from "../support/prometheus-text.js";

const DATA_TOKEN = "data-token-for-metrics-test";
const ADMIN_TOKEN = "admin-token-for-metrics-test";
/** Sent in entity bodies; must never show up in a log line. */
const BODY_MARKER = "body-secret-3f9a1c";

type Reply = { status: number; headers: Record<string, string | string[] | undefined>; body: string };

/** One request on a connection of its own, so the cluster hands requests to every worker in turn. */
function send(url: string, method: string, path: string, options: { token?: string; body?: unknown; key?: string } = {}) {
  return new Promise<Reply>((resolve, reject) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = httpRequest(
      new URL(path, url),
      {
        method,
        agent: false,
        headers: {
          ...(options.token && { Authorization: `Bearer ${options.token}` }),
          ...(payload && { "Content-Type": "application/json" }),
          ...(options.key && { "Idempotency-Key": options.key }),
        },
      },
      (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

const dir = tempDir();
let server: ServerProcess;
beforeAll(async () => {
  server = await ServerProcess.start({
    dataDir: dir.path,
    workers: 2,
    args: ["--token", DATA_TOKEN, "--admin-token", ADMIN_TOKEN, "--log-requests", "all"],
  });
});
afterAll(async () => {
  await server.stop();
  dir.remove();
});

async function scrape(): Promise<Samples> {
  const res = await send(server.url, "GET", "/metrics", { token: ADMIN_TOKEN });
  expect(res.status).toBe(200);
  expect(res.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(res.body);
}

const ENTITY_ROUTE = "/v1/entities/{type}/{id}";

describe("/metrics", () => {
  it("parses as Prometheus text, and its counters grow by the requests sent, summed over both workers", async () => {
    const before = await scrape();
    const reads = 40;
    const writes = 12;
    const replays = 6;
    const replies: Reply[] = [];
    for (let i = 0; i < reads; i += 1)
      replies.push(await send(server.url, "GET", `/v1/entities/doc/missing-${i}`, { token: DATA_TOKEN }));
    for (let i = 0; i < writes; i += 1) {
      replies.push(
        await send(server.url, "PUT", `/v1/entities/doc/d${i}`, {
          token: DATA_TOKEN,
          key: `k${i}`,
          body: { i, note: BODY_MARKER },
        }),
      );
    }
    for (let i = 0; i < replays; i += 1) {
      replies.push(
        await send(server.url, "PUT", `/v1/entities/doc/d${i}`, {
          token: DATA_TOKEN,
          key: `k${i}`,
          body: { i, note: BODY_MARKER },
        }),
      );
    }
    for (let i = 0; i < 5; i += 1) replies.push(await send(server.url, "GET", `/v1/entities/doc/d${i}`, { token: "wrong" }));
    const after = await scrape();

    const grew = (name: string, labels: Record<string, string>) => sumOf(after, name, labels) - sumOf(before, name, labels);
    expect(grew("apostate_http_requests_total", { method: "GET", route: ENTITY_ROUTE, status: "404" })).toBe(reads);
    expect(grew("apostate_http_requests_total", { method: "PUT", route: ENTITY_ROUTE, status: "201" })).toBe(writes + replays);
    expect(grew("apostate_http_requests_total", { method: "GET", route: ENTITY_ROUTE, status: "401" })).toBe(5);
    expect(grew("apostate_http_request_duration_seconds_count", { method: "GET", route: ENTITY_ROUTE, status: "404" })).toBe(
      reads,
    );
    expect(
      grew("apostate_http_request_duration_seconds_bucket", { method: "GET", route: ENTITY_ROUTE, status: "404", le: "+Inf" }),
    ).toBe(reads);
    expect(grew("apostate_idempotent_replays_total", { method: "PUT", route: ENTITY_ROUTE })).toBe(replays);
    // Per-shard gauges are read once, from the files: they count each entity once, not per worker.
    expect(sumOf(after, "apostate_shard_entities")).toBe(writes);
    expect(sumOf(after, "apostate_shard_idempotency_records")).toBe(writes);
    expect(sumOf(after, "apostate_shard_sequence")).toBe(writes);
    expect(sumOf(after, "apostate_shard_file_bytes")).toBeGreaterThan(0);

    // Both workers answered some of these requests, so the sums above really span the cluster.
    const ids = new Set(replies.map((reply) => reply.headers["x-request-id"]));
    const pids = new Set(
      logLines()
        .filter((line) => ids.has(line.reqId))
        .map((line) => line.pid),
    );
    expect(pids.size).toBe(2);
  });
});

type LogLine = {
  level: number;
  pid: number;
  msg: string;
  reqId?: string;
  method?: string;
  route?: string;
  path?: string;
  status?: number;
  ms?: number;
};

function logLines(): LogLine[] {
  return server.output.flatMap((line) => {
    try {
      return [JSON.parse(line) as LogLine];
    } catch {
      return [];
    }
  });
}

describe("request logs", () => {
  it("log one JSON line per request, with the id answered in X-Request-Id", async () => {
    const reply = await send(server.url, "PUT", "/v1/entities/doc/logged", { token: DATA_TOKEN, body: { note: BODY_MARKER } });
    expect(reply.status).toBe(201);
    const id = reply.headers["x-request-id"];
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    await expect.poll(() => logLines().filter((line) => line.reqId === id)).toHaveLength(1);
    const [line] = logLines().filter((entry) => entry.reqId === id);
    expect(line).toMatchObject({
      level: 30,
      msg: "request",
      method: "PUT",
      route: ENTITY_ROUTE,
      path: "/v1/entities/doc/logged",
      status: 201,
    });
    expect(line?.ms).toBeGreaterThan(0);
  });

  it("never contain a token or an entity body", async () => {
    await send(server.url, "GET", "/admin/shards", { token: DATA_TOKEN });
    await send(server.url, "PUT", "/v1/entities/doc/x", { token: ADMIN_TOKEN, body: { note: BODY_MARKER } });
    await send(server.url, "PUT", "/v1/entities/Bad/x", { token: DATA_TOKEN, body: { note: BODY_MARKER } });
    const everything = server.output.join("\n");
    expect(everything).toContain('"status":401');
    for (const secret of [DATA_TOKEN, ADMIN_TOKEN, BODY_MARKER]) expect(everything).not.toContain(secret);
  });
});
