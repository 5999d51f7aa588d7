import { rmSync, statSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";
import { copyDirectory, snapshot, startupRefusal } from "./support/data-files.js";
import { jsonRequest, send } from "./support/http.js";

/*
 * A shard file or its WAL deleted or truncated while the server is down must stop start-up
 * with a message naming the file, and start-up must not write a byte: whatever is left is
 * evidence an operator may still recover from.
 */

const root = tempDir();
/** Stopped cleanly: everything checkpointed into the shard files, no WAL left. */
const stopped = join(root.path, "stopped");
/** Killed under load: the shard files' latest commits live only in their WALs. */
const crashed = join(root.path, "crashed");
const SHARD = "shard-000.sqlite";

async function populate(dataDir: string): Promise<ServerProcess> {
  const server = await ServerProcess.start({ dataDir, workers: 1, args: ["--shards", "2"] });
  for (let i = 0; i < 60; i++) {
    const reply = await send(server.url, "PUT", `/v1/entities/item/i${i}`, jsonRequest({ i, pad: "x".repeat(300) }));
    expect(reply.status).toBe(201);
  }
  return server;
}

beforeAll(async () => {
  await (await populate(stopped)).stop();
  await (await populate(crashed)).crash();
  expect(statSync(join(crashed, `${SHARD}-wal`)).size).toBeGreaterThan(0);
}, 60_000);

afterAll(() => root.remove());

let cases = 0;
async function expectRefused(base: string, damage: (dir: string) => void, fileNamed: string): Promise<void> {
  const dir = copyDirectory(base, join(root.path, `case-${++cases}`));
  damage(dir);
  const before = snapshot(dir);
  const { refused, output } = await startupRefusal(dir);
  expect(refused, output).toBe(true);
  expect(output).toContain(join(dir, fileNamed));
  // Every file that was there is byte for byte the same. SQLite's read-only check may leave an
  // empty WAL and its index beside a shard it could not read; those hold nothing.
  const after = snapshot(dir);
  expect(Object.fromEntries(Object.keys(before).map((file) => [file, after[file]]))).toEqual(before);
  for (const file of Object.keys(after).filter((name) => !(name in before))) {
    expect(file).toMatch(/-(wal|shm)$/);
    if (file.endsWith("-wal")) expect(statSync(join(dir, file)).size).toBe(0);
  }
}

describe("start-up detects damaged shard files and changes nothing", () => {
  it("a deleted shard file", async () => {
    await expectRefused(stopped, (dir) => rmSync(join(dir, SHARD)), SHARD);
  });

  it("a shard file truncated to half its size", async () => {
    await expectRefused(stopped, (dir) => truncateSync(join(dir, SHARD), statSync(join(dir, SHARD)).size / 2), SHARD);
  });

  it("a shard file truncated to nothing", async () => {
    await expectRefused(stopped, (dir) => truncateSync(join(dir, SHARD), 0), SHARD);
  });

  it("a WAL deleted after a crash", async () => {
    await expectRefused(crashed, (dir) => rmSync(join(dir, `${SHARD}-wal`)), `${SHARD}-wal`);
  });

  it("a WAL truncated after a crash", async () => {
    const wal = (dir: string) => join(dir, `${SHARD}-wal`);
    await expectRefused(crashed, (dir) => truncateSync(wal(dir), Math.floor(statSync(wal(dir)).size / 2)), `${SHARD}-wal`);
  });

  it("an undamaged crashed directory still starts, with every write", async () => {
    const dir = copyDirectory(crashed, join(root.path, "intact"));
    const server = await ServerProcess.start({ dataDir: dir, workers: 1 });
    try {
      const reply = await send(server.url, "GET", "/v1/entities/item?limit=1000");
      expect((JSON.parse(reply.text) as { items: unknown[] }).items).toHaveLength(60);
    } finally {
      await server.stop();
    }
  });
});
