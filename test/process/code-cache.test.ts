import { copyFileSync, cpSync, existsSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../support/cluster-etcd.js";
import { withHeader } from "../support/code-cache-file.js";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";

/*
 * The compiled server (dist/, built by `npm test`'s pretest): its primary and its workers each
 * run one CommonJS bundle with V8's code cache (server/entry.ts), kept beside the bundles. The
 * server runs from a copy laid out as an install is (package.json, dist/, node_modules), so its
 * caches are the test's own, and `npm pack` rebuilding dist/ in another test file cannot pull
 * the files from under it.
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const install = tempDir("apostate-code-cache-install-");
const data = tempDir("apostate-code-cache-data-");
const SERVER_DIR = join(install.path, "dist/server");
const CACHE_FILE = join(SERVER_DIR, "serve-worker.cjs.v8-cache");
/** The primary's: it writes it once every worker listens, and logs nothing about it. */
const CLI_CACHE_FILE = join(SERVER_DIR, "cli.cjs.v8-cache");
const WORKERS = 2;
let server: ServerProcess | undefined;

/** Whether esbuild has finished writing `file`: it ends every bundle with its source map's URL. */
const complete = (file: string) =>
  existsSync(file) && readFileSync(file, "utf8").trimEnd().split("\n").at(-1)?.startsWith("//# sourceMappingURL=");

beforeAll(async () => {
  const built = () =>
    ["main.js", "cli.cjs", "serve-worker.cjs", "inspection-thread.js"].every((file) => complete(join(ROOT, "dist/server", file)));
  await eventually("dist/ is built", built, 90_000);
  cpSync(join(ROOT, "dist"), join(install.path, "dist"), { recursive: true, filter: (file) => !file.endsWith(".v8-cache") });
  copyFileSync(join(ROOT, "package.json"), join(install.path, "package.json"));
  symlinkSync(join(ROOT, "node_modules"), join(install.path, "node_modules"));
  expect(complete(join(SERVER_DIR, "serve-worker.cjs")) && complete(join(SERVER_DIR, "cli.cjs"))).toBe(true);
}, 120_000);
afterEach(async () => {
  await server?.crash();
  server = undefined;
});
afterAll(() => {
  for (const dir of [install, data]) dir.remove();
});

async function start(env: NodeJS.ProcessEnv = {}, workers = WORKERS): Promise<ServerProcess> {
  server = await ServerProcess.start({
    dataDir: data.path,
    workers,
    command: [process.execPath, join(SERVER_DIR, "main.js"), "serve"],
    env: { APOSTATE_LOG_LEVEL: "debug", ...env },
  });
  return server;
}

/** What each worker said of the cache when its code loaded. */
async function cacheStates(running: ServerProcess, workers = WORKERS): Promise<string[]> {
  const states = () =>
    running.output
      .filter((line) => line.includes('"worker code loaded"'))
      .map((line) => (JSON.parse(line) as { codeCache: string }).codeCache);
  await eventually("every worker has logged its code cache", () => states().length === workers, 30_000);
  return states().sort();
}

describe("the compiled server: its bundles and V8's code cache", () => {
  it("serves from its bundle everything that locates files beside its code, and writes the cache", async () => {
    // One worker wherever the cache is absent or spoiled at start: under load, a second worker may
    // load only after the first has listened and written the cache, and would find it there.
    const running = await start({}, 1);
    expect(await cacheStates(running, 1)).toEqual(["absent"]);
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

  const spoiled: [string, (bytes: Buffer) => Buffer, string][] = [
    [
      "a damaged cache does not stop start-up: it is ignored and replaced",
      (bytes) => bytes.fill(0x5a, bytes.length - 4096),
      "damaged",
    ],
    ["a stale cache (another node's) is ignored and replaced", (bytes) => withHeader(bytes, { node: "v0.0.0" }), "stale"],
  ];
  for (const [name, spoil, state] of spoiled) {
    it(name, async () => {
      const bytes = spoil(readFileSync(CACHE_FILE));
      writeFileSync(CACHE_FILE, bytes);
      const running = await start({}, 1);
      expect(await cacheStates(running, 1)).toEqual([state]);
      expect((await fetch(`${running.url}/v1/entities/doc/a`)).status).toBe(200);
      await eventually("the cache is replaced", () => !readFileSync(CACHE_FILE).equals(bytes), 30_000);
    });
  }

  it("APOSTATE_CODE_CACHE=<directory> keeps the caches there", async () => {
    const elsewhere = tempDir("apostate-code-cache-dir-");
    try {
      const running = await start({ APOSTATE_CODE_CACHE: elsewhere.path }, 1);
      expect(await cacheStates(running, 1)).toEqual(["absent"]);
      await eventually(
        "the caches are written there",
        () => ["cli.cjs.v8-cache", "serve-worker.cjs.v8-cache"].every((file) => existsSync(join(elsewhere.path, file))),
        30_000,
      );
    } finally {
      await server?.crash();
      elsewhere.remove();
    }
  });

  it("APOSTATE_CODE_CACHE=off: no cache read or written", async () => {
    const before = readFileSync(CACHE_FILE);
    const running = await start({ APOSTATE_CODE_CACHE: "off" }, 1);
    expect(await cacheStates(running, 1)).toEqual(["absent"]);
    expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
    expect(readFileSync(CACHE_FILE).equals(before)).toBe(true);
    // Not taken for a directory's name.
    expect(existsSync(join(ROOT, "off"))).toBe(false);
  });

  it("with the build's parsed openapi.json stale, a worker parses openapi.yaml with yaml from node_modules", async () => {
    writeFileSync(join(install.path, "dist/openapi.json"), JSON.stringify({ yamlSha256: "stale", document: {} }));
    const running = await start({}, 1);
    // Validation works from the parsed YAML: a bad key is refused with the contract's problem.
    const refused = await fetch(`${running.url}/v1/entities/${"x".repeat(70)}/a`);
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { code: string }).code).toBe("invalid-key");
    expect((await fetch(`${running.url}/v1/entities/doc/a`)).status).toBe(200);
  });
});
