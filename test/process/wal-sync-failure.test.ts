import { copyFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { failingFsyncEnvironment } from "../support/failing-fsync.js";
import { jsonRequest, send } from "../support/http.js";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";

/*
 * Under `--durability power` a write is acknowledged once the WAL's fsync has finished. When that
 * fsync fails (EIO, from a preloaded library that fails fsyncs of WAL files, in the real server
 * processes), the write has committed but may not be on disk: it must not be answered as failed
 * (a 5xx says nothing was committed), nor as done, and nothing more may be acknowledged on the
 * word of later fsyncs. The server stops; its next start-up syncs every WAL into its shard file
 * before it serves, and refuses to start while that fails.
 */

const dir = tempDir();
const dataDir = join(dir.path, "data");
const trigger = join(dir.path, "disk-fails");
let env: Record<string, string>;
const args = ["--durability", "power", "--shards", "2"];
const ENTITIES = 20;

beforeAll(() => {
  env = failingFsyncEnvironment(dir.path, trigger);
});
afterAll(() => dir.remove());

function put(url: string, id: string, key: string) {
  const request = jsonRequest({ id });
  return send(url, "PUT", `/v1/entities/item/${id}`, { ...request, headers: { ...request.headers, "idempotency-key": key } });
}

/** The live entities in the shard files alone, without their WALs: what has been checkpointed. */
function entitiesInShardFiles(): number {
  const copies = tempDir();
  try {
    let count = 0;
    for (const file of readdirSync(dataDir).filter((name) => name.endsWith(".sqlite"))) {
      copyFileSync(join(dataDir, file), join(copies.path, file));
      const db = new Database(join(copies.path, file), { readonly: true });
      count += (db.prepare("select count(*) as n from entities where data is not null").get() as { n: number }).n;
      db.close();
    }
    return count;
  } finally {
    copies.remove();
  }
}

describe("a failed fsync of a WAL under --durability power", () => {
  it("stops the server without answering the write, and the next start-up makes the write durable", async () => {
    const server = await ServerProcess.start({ dataDir, workers: 2, args, env });
    for (let i = 0; i < ENTITIES; i++) expect((await put(server.url, `i${i}`, `k${i}`)).status).toBe(201);

    writeFileSync(trigger, "");
    // Neither a 5xx (it committed) nor a 2xx (the disk may not hold it): no answer at all.
    await expect(put(server.url, "lost-fsync", "k-lost")).rejects.toThrow();
    expect(await server.exitCode).toBe(1);
    const log = server.output.join("\n");
    expect(log).toMatch(/the fsync of \S+shard-00[01]\.sqlite-wal failed/);
    expect(log).toContain("the server stops");

    // While the disk still fails, start-up cannot sync the WALs, and says so instead of serving.
    const refused = await ServerProcess.startFailing({ dataDir, workers: 1, args, env });
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(/shard-00[01]\.sqlite: its WAL could not be copied into the file and synced/);

    rmSync(trigger);
    const restarted = await ServerProcess.start({ dataDir, workers: 2, args, env });
    try {
      // Every write is in the shard files themselves now, not only in WALs the disk may have lost.
      expect(entitiesInShardFiles()).toBe(ENTITIES + 1);
      for (let i = 0; i < ENTITIES; i++) {
        expect((await send(restarted.url, "GET", `/v1/entities/item/i${i}`)).status).toBe(200);
      }
      // The client's retry with its key is answered from the record: applied exactly once.
      const retry = await put(restarted.url, "lost-fsync", "k-lost");
      expect(retry.status).toBe(201);
      expect(retry.headers["idempotent-replayed"]).toBe("true");
      expect(JSON.parse(retry.text)).toMatchObject({ id: "lost-fsync", version: 1 });
    } finally {
      await restarted.stop();
    }
  }, 120_000);
});
