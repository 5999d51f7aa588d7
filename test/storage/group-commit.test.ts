import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { EntityStore, type Mutation } from "../../server/entities/entity-store.js";
import { EntityConflictError, IdempotencyKeyReusedError, VersionMismatchError } from "../../server/entities/errors.js";
import { openDataDirectory, type ShardSet } from "../../server/storage/data-directory.js";
import type { Durability } from "../../server/storage/shard.js";
import { ShardBusyError } from "../../server/storage/storage-errors.js";
import type { WriteOutcome } from "../../server/entities/write-outcome.js";
import { tempDir } from "../support/temp-dir.js";

/*
 * Group commit, under either durability: writes that arrive together on one shard share one
 * transaction, each in a savepoint. One shard, so every write in a test lands on it.
 */
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

async function openStore(
  durability: Durability,
  dir = tempDir(),
): Promise<{ store: EntityStore; shards: ShardSet; path: string }> {
  const shards = await openDataDirectory(dir.path, { shardCount: 1, durability, busyTimeoutMs: 5000, verify: false });
  cleanups.push(
    () => dir.remove(),
    () => shards.close(),
  );
  return { store: new EntityStore(shards), shards, path: dir.path };
}

const mutation = (id: string, extra: Partial<Mutation> = {}): Mutation => ({ type: "acct", id, preconditions: {}, ...extra });
const keyed = (id: string, key: string, fingerprint = "request-1"): Mutation =>
  mutation(id, { idempotency: { key, fingerprint } });
const representationOf = (outcome: WriteOutcome) => (outcome.kind === "deleted" ? null : outcome.representation);
const inc = (value: number) => ({ do: [{ op: "inc" as const, path: "/n", value }], upsert: true });

describe.each(["power", "process"] as const)("group commit (--durability=%s)", (durability) => {
  it("commits concurrent writes in one transaction and acknowledges each after the commit", async () => {
    const { store, shards } = await openStore(durability);
    const shard = shards.shards[0]!;
    // A second connection sees only what has committed.
    const observer = new Database(shard.file, { readonly: true });
    cleanups.push(() => observer.close());
    const committedRows = () => (observer.prepare("select count(*) as n from entities").get() as { n: number }).n;

    const writes = Array.from({ length: 100 }, (_, i) => store.put(mutation(`e${i}`), { i }));
    let seenInside = -1;
    const probe = shard.commitWrite(() => {
      seenInside = committedRows();
    });
    const outcomes = await Promise.all(writes);
    await probe;

    expect(seenInside).toBe(0);
    expect(outcomes.map((outcome) => outcome.kind)).toEqual(Array(100).fill("created"));
    expect(committedRows()).toBe(100);
    for (let i = 0; i < 100; i += 1) expect(JSON.parse(store.get("acct", `e${i}`).data)).toEqual({ i });
  });

  it("numbers a batch's writes in order, stores the sequence once, and continues from other processes' writes", async () => {
    const { store, shards } = await openStore(durability);
    const shard = shards.shards[0]!;
    const observer = new Database(shard.file, { readonly: true });
    const other = new Database(shard.file);
    cleanups.push(
      () => observer.close(),
      () => other.close(),
    );
    const sequences = () =>
      (observer.prepare("select sequence from entities order by sequence").all() as { sequence: number }[]).map(
        (row) => row.sequence,
      );

    await Promise.all(Array.from({ length: 50 }, (_, i) => store.put(mutation(`e${i}`), { i })));
    expect(sequences()).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(shard.state()).toMatchObject({ sequence: 50, last_write_at: expect.any(String) });

    // Another worker's write between two batches.
    other.prepare("update shard_state set sequence = sequence + 1").run();
    await Promise.all(Array.from({ length: 10 }, (_, i) => store.ops(keyed(`k${i}`, `key${i}`), inc(1))));
    expect(sequences().slice(50)).toEqual(Array.from({ length: 10 }, (_, i) => 52 + i));
    expect(shard.state().sequence).toBe(61);
    // Each record carries the slot and the sequence of the write that recorded it.
    const records = observer
      .prepare(
        "select r.slot, r.sequence, e.slot as entity_slot, e.sequence as entity_sequence from idempotency r join entities e using (type, id)",
      )
      .all() as { slot: number; sequence: number; entity_slot: number; entity_sequence: number }[];
    expect(records).toHaveLength(10);
    for (const record of records) expect([record.slot, record.sequence]).toEqual([record.entity_slot, record.entity_sequence]);
  });

  it("keeps the sequence growing when the write that advanced it in shard_state is rolled back", async () => {
    const { store, shards } = await openStore(durability);
    const shard = shards.shards[0]!;
    const failAfterNumber = () =>
      shard.commitWrite((tx) => {
        tx.nextSequence("x");
        throw new Error("failed after taking a number");
      });

    await expect(failAfterNumber()).rejects.toThrow("failed after taking a number");
    expect(shard.state().sequence).toBe(0);

    const [failed, saved] = await Promise.allSettled([failAfterNumber(), store.put(mutation("next"), {})]);
    expect([failed.status, saved.status]).toEqual(["rejected", "fulfilled"]);
    // The failed write's number is a gap, never reused.
    expect(shard.readEntity("acct", "next")?.sequence).toBe(2);
    expect(shard.state().sequence).toBe(2);
    await store.put(mutation("after"), {});
    expect(shard.readEntity("acct", "after")?.sequence).toBe(3);
  });

  it("rolls back a failing write alone; its neighbours in the batch commit", async () => {
    const { store, shards } = await openStore(durability);
    await store.put(mutation("existing"), { n: 1 });

    const results = await Promise.allSettled([
      store.put(mutation("before"), { ok: true }),
      store.put(mutation("absent", { preconditions: { ifMatch: [7] } }), { never: true }),
      store.ops(mutation("existing"), { if: [{ path: "/n", op: "gt", value: 5 }], do: [{ op: "set", path: "/n", value: 99 }] }),
      // Writes a row, then fails: the savepoint takes the row back with it.
      shards.shards[0]!.commitWrite((tx) => {
        tx.saveEntity(
          {
            type: "acct",
            id: "half",
            slot: 0,
            version: 1,
            data: "{}",
            created_at: "x",
            updated_at: "x",
            sequence: tx.nextSequence("x"),
          },
          undefined,
        );
        throw new Error("failed after writing");
      }),
      store.put(mutation("after"), { ok: true }),
    ]);

    expect(results.map((result) => result.status)).toEqual(["fulfilled", "rejected", "rejected", "rejected", "fulfilled"]);
    const reasons = results.map((result) => (result.status === "rejected" ? result.reason : undefined));
    expect(reasons[1]).toBeInstanceOf(VersionMismatchError);
    expect(reasons[2]).toBeInstanceOf(EntityConflictError);
    expect((reasons[3] as Error).message).toBe("failed after writing");
    expect(store.get("acct", "before").version).toBe(1);
    expect(store.get("acct", "after").version).toBe(1);
    expect(JSON.parse(store.get("acct", "existing").data)).toEqual({ n: 1 });
    expect(shards.shards[0]!.readEntity("acct", "half")).toBeUndefined();
    expect(shards.shards[0]!.readEntity("acct", "absent")).toBeUndefined();
    // The failed write's tally went back with its savepoint: existing, before and after.
    expect(shards.shards[0]!.stats().entities).toBe(3);
  });

  it("applies a keyed request once when its duplicates arrive in the same batch or later", async () => {
    const { store } = await openStore(durability);
    const [first, duplicate, reused, other] = await Promise.allSettled([
      store.ops(keyed("counter", "k1"), inc(1)),
      store.ops(keyed("counter", "k1"), inc(1)),
      store.ops(keyed("counter", "k1", "another-request"), inc(1)),
      store.ops(keyed("counter", "k2"), inc(10)),
    ]);

    expect(first).toMatchObject({ status: "fulfilled", value: { kind: "created", version: 1, replayed: false } });
    expect(duplicate).toMatchObject({ status: "fulfilled", value: { kind: "created", version: 1, replayed: true } });
    expect(reused).toMatchObject({ status: "rejected", reason: expect.any(IdempotencyKeyReusedError) });
    expect(other).toMatchObject({ status: "fulfilled", value: { kind: "updated", version: 2, replayed: false } });
    const recorded = first.status === "fulfilled" ? representationOf(first.value) : null;
    expect(duplicate.status === "fulfilled" && representationOf(duplicate.value)).toBe(recorded);

    const later = await store.ops(keyed("counter", "k1"), inc(1));
    expect(later).toMatchObject({ kind: "created", replayed: true, representation: recorded });
    expect(JSON.parse(store.get("acct", "counter").data)).toEqual({ n: 11 });
  });

  it("waits for a lock another process holds without blocking, then commits, or fails as busy", async () => {
    const dir = tempDir();
    const shards = await openDataDirectory(dir.path, { shardCount: 1, durability, busyTimeoutMs: 300, verify: false });
    cleanups.push(
      () => dir.remove(),
      () => shards.close(),
    );
    const store = new EntityStore(shards);
    // Another process's writer, holding the shard's write lock.
    const other = new Database(shards.shards[0]!.file);
    cleanups.push(() => other.close());

    other.exec("begin immediate");
    const waiting = Promise.all(Array.from({ length: 20 }, (_, i) => store.ops(keyed("shared", `k${i}`), inc(1))));
    // Were SQLite's busy handler waiting (300 ms) with the event loop stopped, this timer
    // could not fire before the writes had failed as busy.
    await new Promise((resolve) => setTimeout(resolve, 50));
    other.exec("commit");
    await waiting;
    expect(store.get("acct", "shared")).toMatchObject({ version: 20, data: '{"n":20}' });

    other.exec("begin immediate");
    const refused = store.put(mutation("late"), {});
    await expect(refused).rejects.toBeInstanceOf(ShardBusyError);
    other.exec("rollback");
    expect(shards.shards[0]!.readEntity("acct", "late")).toBeUndefined();
  });
});
