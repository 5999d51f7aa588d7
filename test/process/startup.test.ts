import { readFileSync, writeFileSync, mkdirSync, copyFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";

const dirs: { remove: () => void }[] = [];
afterAll(() => dirs.forEach((dir) => dir.remove()));

/** A data directory with a few entities in it, made by a real server and cleanly stopped. */
async function populated(): Promise<string> {
  const dir = tempDir();
  dirs.push(dir);
  const server = await ServerProcess.start({ dataDir: dir.path, args: ["--shards", "2"] });
  for (let i = 0; i < 50; i += 1) {
    await fetch(`${server.url}/v1/entities/doc/d${i}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ i, text: "x".repeat(2000) }),
    });
  }
  expect(await server.stop()).toBe(0);
  return dir.path;
}

const snapshot = (dir: string, files: string[]) => files.map((file) => readFileSync(join(dir, file)));

describe("start-up refuses a data directory it cannot trust, and touches nothing", () => {
  let template: string;
  beforeAll(async () => {
    template = await populated();
  });

  function copyOf(source: string): string {
    const dir = tempDir();
    dirs.push(dir);
    for (const file of ["manifest.json", "shard-000.sqlite", "shard-001.sqlite"])
      copyFileSync(join(source, file), join(dir.path, file));
    return dir.path;
  }

  it("serves the template (sanity)", async () => {
    const server = await ServerProcess.start({ dataDir: copyOf(template) });
    const res = await fetch(`${server.url}/v1/entities/doc/d7`);
    expect(((await res.json()) as { data: { i: number } }).data.i).toBe(7);
    await server.stop();
  });

  it("refuses a corrupt shard file, naming it, and leaves it byte for byte", async () => {
    const dir = copyOf(template);
    const file = join(dir, "shard-001.sqlite");
    const bytes = readFileSync(file);
    bytes.fill(0x5a, 4096, 4096 * 8); // scribble over pages 2-8: b-tree roots and data
    writeFileSync(file, bytes);
    const before = snapshot(dir, ["manifest.json", "shard-000.sqlite", "shard-001.sqlite"]);
    const { code, output } = await ServerProcess.startFailing({ dataDir: dir });
    expect(code).not.toBe(0);
    expect(output).toContain("shard-001.sqlite");
    expect(output).toMatch(/corrupt|malformed|not a database/);
    expect(snapshot(dir, ["manifest.json", "shard-000.sqlite", "shard-001.sqlite"])).toEqual(before);
  });

  it("refuses a shard file with a damaged header", async () => {
    const dir = copyOf(template);
    const file = join(dir, "shard-000.sqlite");
    const bytes = readFileSync(file);
    bytes.write("garbage garbage!", 0);
    writeFileSync(file, bytes);
    const { code, output } = await ServerProcess.startFailing({ dataDir: dir });
    expect(code).toBe(1); // damaged data (apostate --help lists the exit codes)
    expect(output).toContain("shard-000.sqlite");
    expect(readFileSync(file)).toEqual(bytes);
  });

  it("refuses a manifest that lists a missing shard file", async () => {
    const dir = copyOf(template);
    unlinkSync(join(dir, "shard-001.sqlite"));
    const { code, output } = await ServerProcess.startFailing({ dataDir: dir });
    expect(code).not.toBe(0);
    expect(output).toMatch(/shard-001\.sqlite is listed in manifest\.json but missing/);
  });

  it("refuses a shard file the manifest does not list", async () => {
    const dir = copyOf(template);
    copyFileSync(join(dir, "shard-001.sqlite"), join(dir, "shard-002.sqlite"));
    const { code, output } = await ServerProcess.startFailing({ dataDir: dir });
    expect(code).not.toBe(0);
    expect(output).toMatch(/shard-002\.sqlite is not listed/);
  });

  it("refuses shard files swapped with each other", async () => {
    const dir = copyOf(template);
    copyFileSync(join(template, "shard-000.sqlite"), join(dir, "shard-001.sqlite"));
    copyFileSync(join(template, "shard-001.sqlite"), join(dir, "shard-000.sqlite"));
    const { code, output } = await ServerProcess.startFailing({ dataDir: dir });
    expect(code).not.toBe(0);
    expect(output).toMatch(/shard-000\.sqlite does not match the manifest/);
  });

  it("refuses a non-empty directory without a manifest", async () => {
    const dir = tempDir();
    dirs.push(dir);
    writeFileSync(join(dir.path, "notes.txt"), "mine");
    const { code, output } = await ServerProcess.startFailing({ dataDir: dir.path });
    expect(code).not.toBe(0);
    expect(output).toMatch(/not empty and has no manifest\.json/);
    expect(readFileSync(join(dir.path, "notes.txt"), "utf8")).toBe("mine");
  });

  it("initialises an empty directory, and a missing one", async () => {
    const dir = tempDir();
    dirs.push(dir);
    mkdirSync(join(dir.path, "empty"));
    for (const path of [join(dir.path, "empty"), join(dir.path, "new", "nested")]) {
      const server = await ServerProcess.start({ dataDir: path, args: ["--shards", "3"] });
      await server.stop();
      const manifest = JSON.parse(readFileSync(join(path, "manifest.json"), "utf8")) as { shards: unknown[] };
      expect(manifest.shards).toHaveLength(3);
    }
  });

  it.each([
    ["--port", "70000"],
    ["--workers", "0"],
    ["--durability", "sometimes"],
    ["--body-limit", "lots"],
    ["--idempotency-retention", "forever"],
  ])("stops on a bad %s naming it", async (flag, value) => {
    const dir = tempDir();
    dirs.push(dir);
    const { code, output } = await ServerProcess.startFailing({ dataDir: dir.path, args: [flag, value] });
    expect(code).toBe(2); // bad usage
    expect(output).toContain(flag);
  });

  it("refuses a non-loopback host without tokens", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const { code, output } = await ServerProcess.startFailing({ dataDir: dir.path, args: ["--host", "0.0.0.0"] });
    expect(code).not.toBe(0);
    expect(output).toMatch(/--token and --admin-token/);
  });
});
