import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { eventually } from "../support/cluster-etcd.js";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";

/*
 * The compiled server (dist/, built by `npm test`'s pretest): its primary and its workers each
 * run one CommonJS bundle with V8's code cache (server/entry.ts). The caches go to a directory of
 * the test's own through APOSTATE_CODE_CACHE, so the build's are left alone.
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const data = tempDir("apostate-code-cache-data-");
const cache = tempDir("apostate-code-cache-dir-");
const CACHE_FILE = join(cache.path, "serve-worker.cjs.v8-cache");
/** The primary's: it writes it once every worker listens, and logs nothing about it. */
const CLI_CACHE_FILE = join(cache.path, "cli.cjs.v8-cache");
const WORKERS = 2;
let server: ServerProcess | undefined;

afterEach(async () => {
  await server?.crash();
  server = undefined;
});
afterAll(() => {
  data.remove();
  cache.remove();
});

async function start(): Promise<ServerProcess> {
  server = await ServerProcess.start({
    dataDir: data.path,
    workers: WORKERS,
    compiled: true,
    env: { APOSTATE_CODE_CACHE: cache.path, APOSTATE_LOG_LEVEL: "debug" },
  });
  return server;
}

/** What each worker said of the cache when its code loaded. */
async function cacheStates(running: ServerProcess): Promise<string[]> {
  const states = () =>
    running.output
      .filter((line) => line.includes('"worker code loaded"'))
      .map((line) => (JSON.parse(line) as { codeCache: string }).codeCache);
  await eventually("every worker has logged its code cache", () => states().length === WORKERS, 30_000);
  return states().sort();
}

describe("the compiled server's workers and V8's code cache", () => {
  it("serves from its bundle everything that locates files beside its code, and writes the cache", async () => {
    const running = await start();
    expect(await cacheStates(running)).toEqual(["absent", "absent"]);
    const put = await fetch(`${running.url}/v1/entities/doc/a`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ n: 1 }),
    });
    expect(put.status).toBe(201);
    expect(((await (await fetch(`${running.url}/v1/entities/doc/a`)).json()) as { data: unknown }).data).toEqual({ n: 1 });
    // openapi.yaml, the dashboard and swagger-ui are found from the bundle's own location.
    expect(await (await fetch(`${running.url}/openapi.yaml`)).text()).toContain("openapi: 3.0");
    expect((await fetch(`${running.url}/ui`)).status).toBe(200);
    expect((await fetch(`${running.url}/docs`)).status).toBe(200);
    // The integrity check runs in a worker thread, whose entry sits beside the bundle.
    const check = await fetch(`${running.url}/admin/shards/0/check`, { method: "POST" });
    expect(await check.json()).toEqual({ shard: 0, ok: true, messages: [] });
    await eventually("the caches are written", () => existsSync(CACHE_FILE) && existsSync(CLI_CACHE_FILE), 30_000);
  });

  it("a restart after kill -9 uses the caches, and does not write them again", async () => {
    const before = [readFileSync(CACHE_FILE), readFileSync(CLI_CACHE_FILE)];
    const running = await start();
    expect(await cacheStates(running)).toEqual(["used", "used"]);
    expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
    // Buffer.equals: vitest's deep equality takes seconds over megabytes.
    expect([
      readFileSync(CACHE_FILE).equals(before[0] as Buffer),
      readFileSync(CLI_CACHE_FILE).equals(before[1] as Buffer),
    ]).toEqual([true, true]);
  });

  it("a damaged cache of the primary's does not stop start-up: it is replaced", async () => {
    const bytes = readFileSync(CLI_CACHE_FILE);
    bytes.fill(0x5a, 100, 4096);
    writeFileSync(CLI_CACHE_FILE, bytes);
    const running = await start();
    expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
    await eventually("the cache is replaced", () => !readFileSync(CLI_CACHE_FILE).equals(bytes), 30_000);
  });

  it("a damaged cache does not stop start-up: it is ignored and replaced", async () => {
    const bytes = readFileSync(CACHE_FILE);
    bytes.fill(0x5a, bytes.length - 4096);
    writeFileSync(CACHE_FILE, bytes);
    const running = await start();
    expect(await cacheStates(running)).toEqual(["damaged", "damaged"]);
    expect((await fetch(`${running.url}/v1/entities/doc/a`)).status).toBe(200);
    await eventually("the cache is replaced", () => !readFileSync(CACHE_FILE).equals(bytes), 30_000);
  });

  it("a stale cache (another node's) is ignored and replaced", async () => {
    const bytes = readFileSync(CACHE_FILE);
    const lineEnd = bytes.indexOf(0x0a);
    const header = JSON.parse(bytes.subarray(0, lineEnd).toString()) as Record<string, string>;
    const stale = Buffer.concat([Buffer.from(`${JSON.stringify({ ...header, node: "v0.0.0" })}\n`), bytes.subarray(lineEnd + 1)]);
    writeFileSync(CACHE_FILE, stale);
    const running = await start();
    expect(await cacheStates(running)).toEqual(["stale", "stale"]);
    expect((await fetch(`${running.url}/v1/entities/doc/a`)).status).toBe(200);
    await eventually("the cache is replaced", () => !readFileSync(CACHE_FILE).equals(stale), 30_000);
  });

  it("APOSTATE_CODE_CACHE=off: no cache read or written", async () => {
    const running = (server = await ServerProcess.start({
      dataDir: data.path,
      workers: 1,
      compiled: true,
      env: { APOSTATE_CODE_CACHE: "off", APOSTATE_LOG_LEVEL: "debug" },
    }));
    const said = () => running.output.filter((line) => line.includes('"codeCache"'));
    await eventually("the worker has logged its code cache", () => said().length === 1, 30_000);
    expect(said()[0]).toContain('"codeCache":"absent"');
    expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
    // Not taken for a directory's name.
    expect(existsSync(join(ROOT, "off"))).toBe(false);
  });
});
