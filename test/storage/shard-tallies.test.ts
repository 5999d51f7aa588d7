import Database from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import * as createShard from "../../schema/migrations/2026_11_26_000000_create_shard.js";
import { ShardAdmin } from "../../server/admin/shard-admin.js";
import { EntityStore, type Mutation } from "../../server/entities/entity-store.js";
import { openDataDirectory, type ShardSet } from "../../server/storage/data-directory.js";
import { tempDir } from "../support/temp-dir.js";

/*
 * Each shard keeps running tallies of its live entities and idempotency records in the write
 * transactions themselves; the figures read them instead of counting. Whatever the mix of
 * writes, they must equal a real count of every shard, and a tally that disagrees is reported.
 */
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

async function openStore(): Promise<{ store: EntityStore; shards: ShardSet; admin: ShardAdmin }> {
  const dir = tempDir();
  const shards = await openDataDirectory(dir.path, { shardCount: 4, durability: "process", busyTimeoutMs: 5000, verify: false });
  cleanups.push(
    () => dir.remove(),
    () => shards.close(),
  );
  return { store: new EntityStore(shards), shards, admin: new ShardAdmin(shards) };
}

/** Counted on a connection of its own, the way a tally must never be needed again. */
function realCounts(file: string): { entities: number; idempotencyRecords: number } {
  const db = new Database(file, { readonly: true });
  try {
    return {
      entities: db.prepare("select count(*) from entities where data is not null").pluck().get() as number,
      idempotencyRecords: db.prepare("select count(*) from idempotency").pluck().get() as number,
    };
  } finally {
    db.close();
  }
}

function expectTalliesMatch(admin: ShardAdmin, shards: ShardSet): void {
  const figures = admin.list();
  for (const shard of shards.shards) {
    const { entities, idempotencyRecords } = figures[shard.placement.shard]!;
    expect({ shard: shard.placement.shard, entities, idempotencyRecords }).toEqual({
      shard: shard.placement.shard,
      ...realCounts(shard.file),
    });
  }
}

const plain = (id: string): Mutation => ({ type: "doc", id, preconditions: {} });
const keyed = (id: string, key: string): Mutation => ({ ...plain(id), idempotency: { key, fingerprint: `fp-${key}` } });

describe("shard tallies", () => {
  it("equal the real counts after creates, replaces, deletes, re-creates, replays and purges", async () => {
    const { store, shards, admin } = await openStore();
    for (let i = 0; i < 40; i += 1) await store.put(i % 2 === 0 ? plain(`d${i}`) : keyed(`d${i}`, `create-${i}`), { i });
    expectTalliesMatch(admin, shards);
    expect(admin.list().reduce((sum, info) => sum + info.entities, 0)).toBe(40);
    // Used shards differ: the test spans several of them.
    expect(admin.list().filter((info) => info.entities > 0).length).toBeGreaterThan(1);

    for (let i = 0; i < 40; i += 3) await store.put(keyed(`d${i}`, `replace-${i}`), { i, replaced: true });
    for (let i = 0; i < 40; i += 4) await store.delete(keyed(`d${i}`, `delete-${i}`));
    // A replayed delete and a replayed create change nothing, neither entity nor record.
    expect((await store.delete(keyed("d0", "delete-0"))).replayed).toBe(true);
    expect((await store.put(keyed("d1", "create-1"), { i: 1 })).replayed).toBe(true);
    // Deleting a tombstone fails and counts nothing.
    await expect(store.delete(plain("d4"))).rejects.toThrow();
    expectTalliesMatch(admin, shards);

    for (let i = 0; i < 40; i += 8) await store.put(keyed(`d${i}`, `recreate-${i}`), { i, again: true });
    expectTalliesMatch(admin, shards);
    expect(admin.list().reduce((sum, info) => sum + info.entities, 0)).toBe(40 - 10 + 5);

    const future = Date.now() + 60_000;
    for (const shard of shards.shards) while (shard.purgeIdempotency(future, 3) > 0);
    expectTalliesMatch(admin, shards);
    expect(admin.list().every((info) => info.idempotencyRecords === 0)).toBe(true);
  });

  it("are reported by check when one was damaged by hand", async () => {
    const { store, shards, admin } = await openStore();
    for (let i = 0; i < 20; i += 1) await store.put(keyed(`d${i}`, `k${i}`), { i });
    const target = shards.shards.find((shard) => realCounts(shard.file).entities > 0)!;
    const number = target.placement.shard;
    expect(await admin.check(number)).toEqual({ shard: number, ok: true, messages: [] });

    const { entities, idempotencyRecords } = realCounts(target.file);
    const db = new Database(target.file);
    cleanups.push(() => db.close());
    db.prepare("update shard_state set entities = entities + 2, idempotency_records = idempotency_records - 1").run();

    expect(await admin.check(number)).toEqual({
      shard: number,
      ok: false,
      messages: [
        `the entity tally is ${entities + 2}, but the shard holds ${entities} live entities`,
        `the idempotency-record tally is ${idempotencyRecords - 1}, but the shard holds ${idempotencyRecords} records`,
      ],
    });
    // The other shards are still sound.
    const other = shards.shards.find((shard) => shard !== target)!.placement.shard;
    expect((await admin.check(other)).ok).toBe(true);
  });

  it("are set from real counts when a shard from before the tallies is migrated", async () => {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const first = await openDataDirectory(dir.path, { shardCount: 1, durability: "process", busyTimeoutMs: 5000, verify: false });
    const firstStore = new EntityStore(first);
    for (let i = 0; i < 7; i += 1) await firstStore.put(keyed(`d${i}`, `k${i}`), { i });
    await firstStore.delete(plain("d3"));
    first.close();
    // Back to the released schema: no tally columns, the first schema's idempotency table with
    // the same records, and neither later migration applied.
    const db = new Database(first.shards[0]!.file);
    const records = db.prepare("select type, id, key, fingerprint, created_at from idempotency").all() as {
      type: string;
      id: string;
      key: string;
      fingerprint: string;
      created_at: number;
    }[];
    db.exec("drop table idempotency");
    for (const column of ["entities", "idempotency_records", "clean_close"])
      db.exec(`alter table shard_state drop column ${column}`);
    db.prepare("delete from kysely_migration where name > '2026_11_26_000000_create_shard'").run();
    await createShard.up(new Kysely({ dialect: new SqliteDialect({ database: db }) }));
    const insert = db.prepare(
      `insert into idempotency (type, id, key, fingerprint, status, etag, location, body, created_at) values (?, ?, ?, ?, 200, '"1"', null, '{}', ?)`,
    );
    for (const record of records) insert.run(record.type, record.id, record.key, record.fingerprint, record.created_at);
    db.close();

    const reopened = await openDataDirectory(dir.path, {
      shardCount: 1,
      durability: "process",
      busyTimeoutMs: 5000,
      verify: true,
    });
    cleanups.push(() => reopened.close());
    expect(new ShardAdmin(reopened).list()[0]).toMatchObject({ entities: 6, idempotencyRecords: 7 });
  });
});
