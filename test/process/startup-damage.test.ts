import { existsSync, rmSync, statSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EntityStore } from "../../server/entities/entity-store.js";
import { openDataDirectory } from "../../server/storage/data-directory.js";
import { DataDirectoryError } from "../../server/storage/storage-errors.js";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";
import { copyDirectory, crashMidWrite, snapshot, startupRefusal } from "../support/data-files.js";
import { jsonRequest, send } from "../support/http.js";

/*
 * A shard file or its WAL deleted or truncated while the server is down must stop start-up
 * with a message naming the file, and start-up must not write a byte: whatever is left is
 * evidence an operator may still recover from. The damaged directories are opened the way the
 * primary opens them at start-up (`verify: true`), in this process; one case also goes through
 * a real `apostate serve`.
 */

let root: ReturnType<typeof tempDir>;
/** Stopped cleanly: everything checkpointed into the shard files, no WAL left. */
let stopped: string;
/** As kill -9 leaves it: the latest commits live only in the WALs, beside their -shm index. */
let crashed: string;
const SHARD = "shard-000.sqlite";
const ENTITIES = 60;

beforeAll(async () => {
  root = tempDir();
  stopped = join(root.path, "stopped");
  crashed = join(root.path, "crashed");
  const live = join(root.path, "live");
  const server = await ServerProcess.start({ dataDir: live, workers: 1, args: ["--shards", "2"] });
  for (let i = 0; i < ENTITIES; i++) {
    const reply = await send(server.url, "PUT", `/v1/entities/item/i${i}`, jsonRequest({ i, pad: "x".repeat(300) }));
    expect(reply.status).toBe(201);
  }
  // With no request in flight, the files are exactly what a SIGKILL would leave behind.
  copyDirectory(live, crashed);
  await server.stop();
  copyDirectory(live, stopped);
  expect(statSync(join(crashed, `${SHARD}-wal`)).size).toBeGreaterThan(0);
}, 60_000);

afterAll(() => root?.remove());

const open = (dir: string) => openDataDirectory(dir, { shardCount: 2, durability: "process", busyTimeoutMs: 5000, verify: true });

let cases = 0;
function damagedCopy(base: string, damage: (dir: string) => void): string {
  const dir = copyDirectory(base, join(root.path, `case-${++cases}`));
  damage(dir);
  return dir;
}

/** Every file that was there is byte for byte the same afterwards. */
function expectUntouched(dir: string, before: Record<string, string>): void {
  const after = snapshot(dir);
  expect(Object.fromEntries(Object.keys(before).map((file) => [file, after[file]]))).toEqual(before);
  // SQLite's read-only check may leave an empty WAL and its index beside a shard it could not
  // read; those hold nothing.
  for (const file of Object.keys(after).filter((name) => !(name in before))) {
    expect(file).toMatch(/-(wal|shm)$/);
    if (file.endsWith("-wal")) expect(statSync(join(dir, file)).size).toBe(0);
  }
}

async function expectRefused(base: string, damage: (dir: string) => void, fileNamed: string): Promise<void> {
  const dir = damagedCopy(base, damage);
  const before = snapshot(dir);
  let refusal: unknown;
  try {
    (await open(dir)).close();
  } catch (error) {
    refusal = error;
  }
  expect(refusal).toBeInstanceOf(DataDirectoryError);
  expect((refusal as Error).message).toContain(join(dir, fileNamed));
  expectUntouched(dir, before);
}

const wal = (dir: string) => join(dir, `${SHARD}-wal`);

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
    await expectRefused(crashed, (dir) => rmSync(wal(dir)), `${SHARD}-wal`);
  });

  it("a WAL truncated after a crash", async () => {
    await expectRefused(crashed, (dir) => truncateSync(wal(dir), Math.floor(statSync(wal(dir)).size / 2)), `${SHARD}-wal`);
  });

  it("apostate serve exits with the message and writes nothing", async () => {
    const dir = damagedCopy(crashed, (copy) => rmSync(wal(copy)));
    const before = snapshot(dir);
    const { refused, output } = await startupRefusal(dir);
    expect(refused, output).toBe(true);
    expect(output).toContain(`${wal(dir)} is missing`);
    expectUntouched(dir, before);
  });

  it("knows which shards a crash left open and which a clean stop closed", async () => {
    for (const [base, unclean] of [
      [stopped, []],
      [crashed, [0, 1]],
    ] as const) {
      const shards = await open(copyDirectory(base, join(root.path, `case-${++cases}`)));
      shards.close();
      expect(shards.uncleanShards).toEqual(unclean);
    }
  });

  it("a rollback journal a crash left mid-write is rolled back, as SQLite recovers, and start-up goes on", async () => {
    // An install switches a closed copy's journal mode with a short rollback-journal write: a
    // kill -9 inside it leaves a hot journal, which only a connection that may write can roll back.
    const dir = damagedCopy(stopped, (copy) => crashMidWrite(join(copy, SHARD)));
    expect(statSync(`${join(dir, SHARD)}-journal`).size).toBeGreaterThan(0);
    const shards = await open(dir);
    try {
      expect(new EntityStore(shards).list("item", { prefix: "", limit: 1000 }).items).toHaveLength(ENTITIES);
    } finally {
      shards.close();
    }
    expect(existsSync(`${join(dir, SHARD)}-journal`)).toBe(false);
  });

  it("an undamaged crashed directory opens with every write", async () => {
    const shards = await open(copyDirectory(crashed, join(root.path, "intact")));
    try {
      expect(new EntityStore(shards).list("item", { prefix: "", limit: 1000 }).items).toHaveLength(ENTITIES);
    } finally {
      shards.close();
    }
  });
});
