import { copyFileSync, cpSync, openSync, statSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { slotOf } from "../../schema/placement.js";
import { offlineAdmin } from "../../server/cli/offline-admin.js";
import { openDataDirectory } from "../../server/storage/data-directory.js";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";
import { createTestApp, type TestApp } from "../support/test-app.js";
import { runCli } from "../support/run-cli.js";
import { crashMidWrite, snapshot } from "../support/data-files.js";

const OPEN_OPTIONS = { durability: "process", busyTimeoutMs: 5000 } as const;

describe("check", () => {
  let t: TestApp;
  const healthy = tempDir();
  const damaged = tempDir();
  beforeAll(async () => {
    t = await createTestApp({ shardCount: 2 });
    for (let i = 0; i < 400; i += 1) {
      await request(t.app)
        .put(`/v1/entities/doc/d${i}`)
        .send({ text: "x".repeat(300), i })
        .expect(201);
    }
    // Everything into the main files, so a copy of the files is a copy of the store.
    for (const shard of t.shards.shards) shard.checkpoint("TRUNCATE");
    cpSync(t.dataDir, healthy.path, { recursive: true });
    cpSync(t.dataDir, damaged.path, { recursive: true });
    // Garbage over the middle of shard 1's file: b-tree pages that the check must notice.
    const file = join(damaged.path, "shard-001.sqlite");
    const middle = Math.floor(statSync(file).size / 4096 / 2) * 4096;
    const fd = openSync(file, "r+");
    writeSync(fd, Buffer.alloc(4096 * 2, 0xa5), 0, 4096 * 2, middle);
    closeSync(fd);
  });
  afterAll(() => {
    t.close();
    healthy.remove();
    damaged.remove();
  });

  it("reports every shard of a healthy store as ok, served or not", async () => {
    for (const shard of [0, 1]) {
      const served = await request(t.app).post(`/admin/shards/${shard}/check`).expect(200);
      expect(served.body).toEqual({ shard, ok: true, messages: [] });
    }
    const admin = offlineAdmin(healthy.path);
    try {
      expect(await admin.check(1)).toEqual({ shard: 1, ok: true, messages: [] });
    } finally {
      admin.close();
    }
    const cli = await runCli(["check", "--data-dir", healthy.path]);
    expect(cli).toMatchObject({ code: 0, stdout: "shard 0: ok\nshard 1: ok\n" });
  });

  it("reports a damaged copy as damaged, naming what is wrong, and exits 1", async () => {
    const admin = offlineAdmin(damaged.path);
    try {
      expect(await admin.check(0)).toEqual({ shard: 0, ok: true, messages: [] });
      const result = await admin.check(1);
      expect(result.ok).toBe(false);
      expect(result.messages.length).toBeGreaterThan(0);
    } finally {
      admin.close();
    }
    const cli = await runCli(["check", "--data-dir", damaged.path, "--json"]);
    expect(cli.code).toBe(1);
    const { results } = JSON.parse(cli.stdout) as { results: { shard: number; ok: boolean; messages: string[] }[] };
    expect(results.map((r) => r.ok)).toEqual([true, false]);
    const text = await runCli(["check", "--data-dir", damaged.path, "--shard", "1"]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^shard 1: DAMAGED\n {2}\S/);
  });

  it("says so of a file a crash left needing SQLite's recovery, which a read-only check cannot run, and changes nothing", async () => {
    const crashed = tempDir();
    try {
      cpSync(healthy.path, crashed.path, { recursive: true });
      const file = join(crashed.path, "shard-001.sqlite");
      crashMidWrite(file);
      const before = snapshot(crashed.path);
      const cli = await runCli(["check", "--data-dir", crashed.path, "--shard", "1"]);
      expect(cli.code).toBe(1);
      expect(cli.stdout).toContain("needing SQLite's crash recovery");
      expect(cli.stdout).toContain("apostate serve runs it at start-up");
      const after = snapshot(crashed.path);
      expect(Object.fromEntries(Object.keys(before).map((name) => [name, after[name]]))).toEqual(before);
    } finally {
      crashed.remove();
    }
  });
});

describe("backup", () => {
  const dir = tempDir();
  let server: ServerProcess;
  beforeAll(async () => {
    server = await ServerProcess.start({ dataDir: dir.path, workers: 2 });
  });
  afterAll(async () => {
    await server.stop();
    dir.remove();
  });

  it("restores to exactly the entities at the backup's sequence, taken while writes go on", async () => {
    // Keys of shard 0 (slots 0-511 of 8 shards) only, written one at a time: write n of this
    // test is the shard's change n, so the model after `sequence` writes is what a backup
    // holding that sequence must contain.
    const ids: string[] = [];
    for (let i = 0; ids.length < 24; i += 1) if (slotOf("doc", `d${i}`) <= 511) ids.push(`d${i}`);
    const history: Map<string, number>[] = [new Map()];
    const backups: Promise<{ file: string; bytes: number; sequence: number }>[] = [];
    for (let step = 1; step <= 240; step += 1) {
      const state = new Map(history.at(-1));
      const id = ids[(step * 7) % ids.length] as string;
      if (step % 5 === 0 && state.has(id)) {
        expect((await fetch(`${server.url}/v1/entities/doc/${id}`, { method: "DELETE" })).status).toBe(204);
        state.delete(id);
      } else {
        const res = await fetch(`${server.url}/v1/entities/doc/${id}`, {
          method: "PUT",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ step }),
        });
        expect(res.ok).toBe(true);
        state.set(id, step);
      }
      history.push(state);
      if (step % 60 === 30) {
        const requestedAt = step;
        backups.push(
          fetch(`${server.url}/admin/shards/0/backup`, { method: "POST" })
            .then((res) => res.json() as Promise<{ file: string; bytes: number; sequence: number }>)
            .then((backup) => {
              // Taken after it was asked for: no write acknowledged before the request is missing.
              expect(backup.sequence).toBeGreaterThanOrEqual(requestedAt);
              return backup;
            }),
        );
      }
    }
    const taken = await Promise.all(backups);
    expect(taken).toHaveLength(4);
    for (const backup of taken) {
      expect(backup.file).toMatch(/^shard-000-seq\d{12}-\d{8}T\d{9}Z\.sqlite$/);
      const file = join(dir.path, "backups", backup.file);
      expect(statSync(file).size).toBe(backup.bytes);
      expect(await restoredState(file)).toEqual(history[backup.sequence]);
    }
  });

  it("is what apostate backup does through the server that holds the data directory", async () => {
    const cli = await runCli(["backup", "--data-dir", dir.path, "--shard", "3", "--json"]);
    expect(cli.code).toBe(0);
    const { backups } = JSON.parse(cli.stdout) as { backups: { shard: number; file: string; sequence: number }[] };
    expect(backups).toEqual([
      { shard: 3, file: expect.stringMatching(/^shard-003-seq000000000000-/), bytes: expect.any(Number), sequence: 0 },
    ]);
    const table = await runCli(["shards", "--data-dir", dir.path]);
    expect(table.code).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(/^SHARD +SLOTS +ENTITIES +FILE +WAL +SEQUENCE +IDEMPOTENCY +LAST WRITE$/);
    expect(table.stdout).toMatch(/\n0 +0-511 +\d+ /);
  });
});

/** Opens a backup file as shard 0 of a new data directory and reads back every entity's data. */
async function restoredState(backup: string): Promise<Map<string, number>> {
  const restore = tempDir();
  try {
    (await openDataDirectory(restore.path, { ...OPEN_OPTIONS, shardCount: 8, verify: false })).close();
    copyFileSync(backup, join(restore.path, "shard-000.sqlite"));
    const shards = await openDataDirectory(restore.path, { ...OPEN_OPTIONS, shardCount: 8, verify: true });
    try {
      const [shard] = shards.shards;
      const state = new Map<string, number>();
      for (const key of shard?.listKeys(undefined, 10_000) ?? []) {
        const row = shard?.readEntity(key.type, key.id);
        state.set(key.id, (JSON.parse(row?.data ?? "null") as { step: number }).step);
      }
      return state;
    } finally {
      shards.close();
    }
  } finally {
    restore.remove();
  }
}
