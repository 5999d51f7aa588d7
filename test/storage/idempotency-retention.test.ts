import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EntityStore, type Mutation } from "../../server/entities/entity-store.js";
import { openDataDirectory, type ShardSet } from "../../server/storage/data-directory.js";
import { tempDir } from "../support/temp-dir.js";

const dir = tempDir();
let shards: ShardSet;
let store: EntityStore;
beforeAll(async () => {
  shards = await openDataDirectory(dir.path, { shardCount: 4, durability: "process", busyTimeoutMs: 1000, verify: false });
  store = new EntityStore(shards);
});
afterAll(() => {
  shards.close();
  dir.remove();
});

const keyed = (id: string, key: string): Mutation => ({
  type: "counter",
  id,
  preconditions: {},
  idempotency: { key, fingerprint: "same-request" },
});
const inc = { do: [{ op: "inc" as const, path: "/n", value: 1 }], upsert: true };

describe("idempotency retention", () => {
  it("purges records older than the window in bounded batches, after which the key is new again", async () => {
    for (let i = 0; i < 30; i += 1) await store.ops(keyed(`c${i % 3}`, `k${i}`), inc);
    expect((await store.ops(keyed("c0", "k0"), inc)).replayed).toBe(true);

    const future = Date.now() + 60_000;
    const purgedPerShard = shards.shards.map((shard) => shard.purgeIdempotency(future, 5));
    expect(purgedPerShard.every((n) => n <= 5)).toBe(true);
    let purged = purgedPerShard.reduce((a, b) => a + b, 0);
    for (let pass = 0; pass < 10; pass += 1) {
      purged += shards.shards.reduce((sum, shard) => sum + shard.purgeIdempotency(future, 5), 0);
    }
    expect(purged).toBe(30);

    const again = await store.ops(keyed("c0", "k0"), inc);
    expect(again).toMatchObject({ kind: "updated", version: 11, replayed: false });
    expect(again.kind !== "deleted" && JSON.parse(again.representation)).toMatchObject({ version: 11, data: { n: 11 } });
  });

  it("keeps records inside the window", async () => {
    await store.ops(keyed("fresh", "k"), inc);
    const past = Date.now() - 60_000;
    expect(shards.shards.reduce((sum, shard) => sum + shard.purgeIdempotency(past, 1000), 0)).toBe(0);
    expect((await store.ops(keyed("fresh", "k"), inc)).replayed).toBe(true);
  });
});
