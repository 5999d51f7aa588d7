import { setImmediate as nextTurn } from "node:timers/promises";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { slotOf } from "../../schema/placement.js";
import { EntityStore, type Mutation } from "../../server/entities/entity-store.js";
import { openDataDirectory, type ShardSet } from "../../server/storage/data-directory.js";
import { openMemberDirectory } from "../support/member-directory.js";
import { readChanges, type ShardChanges } from "../../server/storage/shard-changes.js";
import { Shard } from "../../server/storage/shard.js";
import { changeFeedIndexes } from "../support/data-files.js";
import { tempDir } from "../support/temp-dir.js";

/*
 * The change feed that moves a shard: a snapshot, then batches of changes applied in order,
 * must reproduce the source row for row (tombstones, re-creations and idempotency records
 * included), however the writes interleave with the tail; and the digest that checks it must
 * tell two copies apart by a single row.
 */
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

async function openSet(shardCount = 1): Promise<{ shards: ShardSet; store: EntityStore }> {
  const shards = await openMemberDirectory(cleanups, { shardCount });
  return { shards, store: new EntityStore(shards) };
}

async function openCopy(file: string): Promise<Shard> {
  const copy = await Shard.openFile(file, { durability: "process", busyTimeoutMs: 5000 });
  cleanups.push(() => copy.close());
  return copy;
}

const plain = (id: string): Mutation => ({ type: "acct", id, preconditions: {} });
const keyed = (id: string, key: string): Mutation => ({ ...plain(id), idempotency: { key, fingerprint: `fp-${key}` } });

/** Every row of a shard file and its state, read on a connection of its own. */
function dump(file: string) {
  const db = new Database(file, { readonly: true });
  try {
    return {
      entities: db.prepare("select * from entities order by type, id").all(),
      idempotency: db.prepare("select * from idempotency order by type, id, key").all(),
      state: db.prepare("select sequence, entities, idempotency_records, last_write_at from shard_state").get(),
    };
  } finally {
    db.close();
  }
}

/** Applies batches of `limit` until one comes back empty (caught up); returns where it stopped. */
function tail(source: Shard, copy: Shard, after: number, limit: number): number {
  let from = after;
  for (;;) {
    const batch = source.changesAfter(from, limit);
    copy.applyChanges(batch);
    from = batch.upTo;
    if (batch.entities.length + batch.idempotency.length === 0) return from;
  }
}

describe("the change feed", () => {
  it("reproduces the source from a snapshot and batches taken under concurrent writes", async () => {
    const { shards, store } = await openSet();
    const source = shards.get(0)!;
    for (let i = 0; i < 60; i += 1) await store.put(i % 3 === 0 ? keyed(`e${i}`, `create-${i}`) : plain(`e${i}`), { i });

    let writing = true;
    let round = 0;
    const writer = (async () => {
      while (writing) {
        round += 1;
        const id = `e${round % 80}`;
        // Creates, replaces, deletes (tombstones), re-creations and keyed writes of each kind.
        const mutation = round % 2 === 0 ? keyed(id, `r${round}`) : plain(id);
        if (round % 7 === 0) await store.delete(mutation).catch(() => undefined);
        else await store.ops(mutation, { if: [], do: [{ op: "inc", path: "/n", value: round }], upsert: true });
      }
    })();

    const file = shards.incomingFile(0);
    const { sequence: s0 } = await source.snapshot(file);
    const copy = await openCopy(file);
    expect(copy.placement).toEqual(source.placement);
    let after = s0;
    for (let pass = 0; pass < 30; pass += 1) {
      const batch = source.changesAfter(after, 5);
      expect(batch.after).toBe(after);
      copy.applyChanges(batch);
      after = batch.upTo;
      await nextTurn();
    }
    writing = false;
    await writer;
    // The writes went on all through the snapshot and the tail.
    expect(round).toBeGreaterThan(30);
    expect(after).toBeGreaterThan(s0);
    tail(source, copy, after, 5);

    expect(copy.digest()).toEqual(source.digest());
    expect(dump(copy.file)).toEqual(dump(source.file));
    const { entities, idempotency } = dump(source.file);
    expect(entities.some((row) => (row as { data: string | null }).data === null)).toBe(true);
    expect(idempotency.length).toBeGreaterThan(20);
  });

  it("changes nothing when a batch is applied again, even after a later one", async () => {
    const { shards, store } = await openSet();
    const source = shards.get(0)!;
    const { sequence: s0 } = await source.snapshot(shards.incomingFile(0));
    const fresh = await openCopy(shards.incomingFile(0));

    for (let i = 0; i < 5; i += 1) await store.put(keyed(`a${i}`, `k${i}`), { v: 1 });
    const first = source.changesAfter(s0, 100);
    for (let i = 0; i < 5; i += 1) await store.put(keyed(`a${i}`, `again-${i}`), { v: 2 });
    await store.delete(plain("a0"));
    const second = source.changesAfter(first.upTo, 100);

    fresh.applyChanges(first);
    const once = dump(fresh.file);
    fresh.applyChanges(first);
    expect(dump(fresh.file)).toEqual(once);

    fresh.applyChanges(second);
    const latest = dump(fresh.file);
    expect(latest).toEqual(dump(source.file));
    // An older batch again does not take a row back to an older state.
    fresh.applyChanges(first);
    expect(dump(fresh.file)).toEqual(latest);
  });

  it("refuses a batch that leaves a gap, or that holds rows of another shard's slots, writing nothing", async () => {
    const { shards, store } = await openSet(2);
    const [low, high] = [shards.get(0)!, shards.get(1)!];
    const ids = Array.from({ length: 40 }, (_, i) => `m${i}`);
    for (const id of ids) await store.put(keyed(id, `k-${id}`), {});
    const { sequence } = await low.snapshot(shards.incomingFile(0));
    const copy = await openCopy(shards.incomingFile(0));
    const before = dump(copy.file);

    const ahead: ShardChanges = { ...low.changesAfter(sequence, 10), after: sequence + 1, upTo: sequence + 5 };
    expect(() => copy.applyChanges(ahead)).toThrow(
      `the changes start after sequence ${sequence + 1}, but the copy holds only up to ${sequence}`,
    );

    const foreign = high.changesAfter(0, 100);
    expect(foreign.entities.length).toBeGreaterThan(0);
    const stray = foreign.entities[0]!;
    expect(() => copy.applyChanges({ ...foreign, after: 0 })).toThrow(
      `${stray.type}/${stray.id} is in slot ${stray.slot}, outside the copy's slots 0-2047`,
    );
    expect(slotOf(stray.type, stray.id)).toBeGreaterThan(2047);
    expect(dump(copy.file)).toEqual(before);
  });

  it("bounds each batch by its limit and says up to where it read", async () => {
    const { shards, store } = await openSet();
    const shard = shards.get(0)!;
    for (let i = 1; i <= 5; i += 1) await store.put(plain(`p${i}`), { i }); // sequences 1-5
    const sequences = (changes: ShardChanges) => ({
      entities: changes.entities.map((row) => row.sequence),
      idempotency: changes.idempotency.map((row) => row.sequence),
      upTo: changes.upTo,
    });

    expect(sequences(shard.changesAfter(0, 2))).toEqual({ entities: [1, 2], idempotency: [], upTo: 2 });
    // Exactly `limit` rows left: full, so upTo is the last row's sequence.
    expect(sequences(shard.changesAfter(3, 2))).toEqual({ entities: [4, 5], idempotency: [], upTo: 5 });
    expect(sequences(shard.changesAfter(4, 2))).toEqual({ entities: [5], idempotency: [], upTo: 5 });
    expect(sequences(shard.changesAfter(5, 2))).toEqual({ entities: [], idempotency: [], upTo: 5 });

    // A row written again moves to its new sequence; the feed holds only its latest state.
    await store.put(plain("p1"), { i: 1, again: true }); // 6
    expect(sequences(shard.changesAfter(0, 10))).toEqual({ entities: [2, 3, 4, 5, 6], idempotency: [], upTo: 6 });

    // Five keyed writes to one entity: one entity row, five records. The records reach the
    // limit first, so the batch stops at the third and leaves the entity row for the next.
    for (let k = 1; k <= 5; k += 1) await store.put(keyed("hot", `h${k}`), { k }); // 7-11
    expect(sequences(shard.changesAfter(6, 3))).toEqual({ entities: [], idempotency: [7, 8, 9], upTo: 9 });
    expect(sequences(shard.changesAfter(9, 3))).toEqual({ entities: [11], idempotency: [10, 11], upTo: 11 });

    expect(shard.changesAfter(11, 3).frozen).toBe(false);
    shard.setFence({ frozen: true });
    expect(shard.changesAfter(11, 3)).toEqual({ after: 11, upTo: 11, entities: [], idempotency: [], frozen: true });

    for (const [after, limit] of [
      [-1, 10],
      [0.5, 10],
      [0, 0],
      [0, 2.5],
    ] as const) {
      expect(() => shard.changesAfter(after, limit)).toThrow(RangeError);
    }
  });
});

describe("the change feed's indexes", () => {
  it("exist only once a member's shard is tailed, until they are dropped or it is opened again, and the feed reads the same batches either way", async () => {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const options = { shardCount: 1, durability: "process", busyTimeoutMs: 5000, verify: false } as const;

    const single = await openDataDirectory(dir.path, options);
    const store = new EntityStore(single);
    for (let i = 0; i < 30; i += 1) await store.put(i % 2 === 0 ? keyed(`f${i}`, `k${i}`) : plain(`f${i}`), { i });
    for (let i = 0; i < 30; i += 4) await store.put(plain(`f${i}`), { i, again: true });
    const file = single.get(0)!.file;
    const batches = (shard: Shard) => [0, 7, 20, 38].map((after) => shard.changesAfter(after, 6));
    const unindexed = (file: string) => {
      const db = new Database(file);
      try {
        return [0, 7, 20, 38].map((after) => readChanges(db, after, 6));
      } finally {
        db.close();
      }
    };
    single.close();
    const scanned = unindexed(file);
    expect(changeFeedIndexes(file)).toEqual([]);

    const member = { ...options, member: { cluster: "test", node: "n1" } };
    const tailed = await openDataDirectory(dir.path, member);
    expect(changeFeedIndexes(file)).toEqual([]);
    expect(batches(tailed.get(0)!)).toEqual(scanned);
    expect(changeFeedIndexes(file)).toEqual(["entities_sequence", "idempotency_sequence"]);
    // A follower's seeding is over: the indexes go, and a later tail builds them again.
    tailed.get(0)!.dropChangeFeedIndexes();
    expect(changeFeedIndexes(file)).toEqual([]);
    expect(batches(tailed.get(0)!)).toEqual(scanned);
    expect(changeFeedIndexes(file)).toEqual(["entities_sequence", "idempotency_sequence"]);
    tailed.close();
    const reopened = await openDataDirectory(dir.path, member);
    cleanups.push(() => reopened.close());
    expect(changeFeedIndexes(file)).toEqual([]);
    // Full batches, then the caught-up one.
    expect(scanned[0]!.entities).toHaveLength(6);
    expect(scanned.at(-1)).toMatchObject({ after: 38, upTo: 38, entities: [], idempotency: [] });
  });
});

describe("the shard digest", () => {
  it("is the same for the same rows whatever their order of writing or page layout, and counts them", async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `d${i}`);
    const first = await openSet();
    const second = await openSet();
    for (const id of ids) await first.store.put(plain(id), { id });
    for (const id of [...ids].reverse()) await second.store.put(plain(id), { id });
    await first.store.delete(plain("d7"));
    await second.store.delete(plain("d7"));
    const [a, b] = [first.shards.get(0)!, second.shards.get(0)!];

    const vacuumed = new Database(b.file);
    vacuumed.exec("vacuum");
    vacuumed.close();
    const digest = a.digest();
    expect(digest).toEqual({ ...b.digest(), sequence: digest.sequence });
    expect(digest).toMatchObject({ entities: 49, rows: 50 });
    expect(digest.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(a.digest({ from: 0, to: 4095 })).toEqual(digest);
  });

  it("differs when a single row differs in version, data, liveness or presence", async () => {
    const { shards, store } = await openSet();
    for (let i = 0; i < 20; i += 1) await store.put(plain(`x${i}`), { i });
    const shard = shards.get(0)!;
    const { checksum } = shard.digest();
    const changes = [
      "update entities set version = version + 1 where id = 'x3'",
      `update entities set data = '{"i":4.0}' where id = 'x4'`,
      "update entities set data = null where id = 'x5'",
      "delete from entities where id = 'x6'",
      "insert into entities values ('acct', 'x6\"', 0, 1, '{}', '', '', 99)",
    ];
    for (const change of changes) {
      const file = shards.incomingFile(0);
      await shard.snapshot(file);
      const db = new Database(file);
      db.exec(change);
      db.close();
      const copy = await Shard.openFile(file, { durability: "process", busyTimeoutMs: 5000 });
      try {
        expect({ change, differs: copy.digest().checksum !== checksum }).toEqual({ change, differs: true });
      } finally {
        copy.close();
      }
    }
  });

  it("with after, checksums only the rows written after it, counts every row and refuses a bad sequence", async () => {
    const { shards, store } = await openSet();
    for (let i = 0; i < 20; i += 1) await store.put(plain(`t${i}`), { i });
    const source = shards.get(0)!;
    const { sequence: s0 } = await source.snapshot(shards.incomingFile(0));
    for (let i = 15; i < 25; i += 1) await store.put(plain(`t${i}`), { i, again: true });
    await store.delete(plain("t16"));
    const copy = await openCopy(shards.incomingFile(0));
    copy.applyChanges(source.changesAfter(s0, 100));

    const tail = source.digest(undefined, s0);
    expect(tail).toEqual({ ...copy.digest(undefined, s0), sequence: tail.sequence });
    expect(tail).toMatchObject({ rows: 25, entities: 24, after: s0 });
    expect(source.digest()).not.toHaveProperty("after");
    expect(tail.checksum).not.toBe(source.digest(undefined, s0 + 1).checksum);
    expect(tail.checksum).not.toBe(source.digest().checksum);
    for (const after of [-1, 1.5, Number.NaN]) expect(() => source.digest(undefined, after)).toThrow(RangeError);

    // The counts see a row lost or killed before s0, the checksum any change after it; a row
    // changed in place before s0 is the snapshot's Content-Digest's to catch, not the tail's.
    const changes: [change: string, seen: boolean][] = [
      ["delete from entities where id = 't3'", true],
      ["update entities set data = null where id = 't4'", true],
      [`update entities set data = '{"i":20}' where id = 't20'`, true],
      ["update entities set version = 9 where id = 't22'", true],
      [`update entities set data = '{"i":5.0}' where id = 't5'`, false],
    ];
    for (const [index, [change, seen]] of changes.entries()) {
      const file = `${shards.incomingFile(0)}-${index}`;
      await source.snapshot(file);
      const db = new Database(file);
      db.exec(change);
      db.close();
      const digest = (await openCopy(file)).digest(undefined, s0);
      const differs = digest.checksum !== tail.checksum || digest.rows !== tail.rows || digest.entities !== tail.entities;
      expect({ change, differs }).toEqual({ change, differs: seen });
    }
  });

  it("covers only the rows of the slots asked for", async () => {
    const { shards, store } = await openSet();
    const ids = Array.from({ length: 40 }, (_, i) => `s${i}`);
    for (const id of ids) await store.put(plain(id), {});
    const shard = shards.get(0)!;
    const low = ids.filter((id) => slotOf("acct", id) <= 1000).length;
    expect(low).toBeGreaterThan(0);
    expect(shard.digest({ from: 0, to: 1000 })).toMatchObject({ entities: low, rows: low });
    expect(shard.digest({ from: 1001, to: 4095 })).toMatchObject({ entities: 40 - low, rows: 40 - low });
    expect(shard.digest({ from: 0, to: 1000 }).checksum).not.toBe(shard.digest().checksum);
  });
});
