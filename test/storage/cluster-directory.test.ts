import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { slotOf } from "../../schema/placement.js";
import { EntityStore, type Mutation } from "../../server/entities/entity-store.js";
import { openDataDirectory, type ShardSet } from "../../server/storage/data-directory.js";
import { MANIFEST_FILE, newManifest, parseManifest, type Manifest } from "../../server/storage/manifest.js";
import type { Shard } from "../../server/storage/shard.js";
import { DataDirectoryError, ShardNotHereError } from "../../server/storage/storage-errors.js";
import { tempDir } from "../support/temp-dir.js";

/*
 * A cluster member's data directory holds whichever shards the map gives its node, and that set
 * changes while the node serves: a copy is installed, a split's source is narrowed, a moved
 * shard is dropped, and the other processes of the node follow by reloading the manifest. Two
 * ShardSets on one directory stand for two processes of one node.
 */
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

const N1 = { cluster: "blue", node: "n1" };
const N2 = { cluster: "blue", node: "n2" };

function newDirectory(): string {
  const dir = tempDir();
  cleanups.push(() => dir.remove());
  return join(dir.path, "data");
}

async function open(path: string, member: typeof N1 | undefined, shardCount = 1): Promise<ShardSet> {
  const shards = await openDataDirectory(path, { shardCount, durability: "process", busyTimeoutMs: 5000, verify: true, member });
  cleanups.push(() => shards.close());
  return shards;
}

const plain = (id: string): Mutation => ({ type: "item", id, preconditions: {} });
const keyed = (id: string): Mutation => ({ ...plain(id), idempotency: { key: `key-${id}`, fingerprint: "fp" } });
const IDS = Array.from({ length: 60 }, (_, i) => `i${i}`);
const UPPER = { from: 2048, to: 4095 };
const LOWER = { from: 0, to: 2047 };
const isUpper = (id: string) => slotOf("item", id) >= UPPER.from;
/** A live entity (the first six are deleted) of the upper half. */
const UPPER_ID = IDS.slice(6).find(isUpper)!;

async function fill(shards: ShardSet): Promise<void> {
  const store = new EntityStore(shards);
  for (const id of IDS) await store.put(keyed(id), { id });
  for (const id of IDS.slice(0, 6)) await store.delete(plain(id));
  expect(IDS.filter(isUpper).length).toBeGreaterThan(5);
  expect(IDS.filter((id) => !isUpper(id)).length).toBeGreaterThan(5);
}

function readManifestFile(path: string): Manifest {
  return JSON.parse(readFileSync(join(path, MANIFEST_FILE), "utf8")) as Manifest;
}

/** An install cut by a crash before the manifest named its file: the file stays, unlisted. */
function unlistShard(path: string, shard: number): void {
  const manifest = readManifestFile(path);
  writeFileSync(
    join(path, MANIFEST_FILE),
    JSON.stringify({ ...manifest, shards: manifest.shards.filter((entry) => entry.shard !== shard) }),
  );
}

/** The rows a shard file holds, counted, against the tallies it keeps. */
function expectSound(shard: Shard): { entities: number; records: number; slots: { min: number; max: number } } {
  const db = new Database(shard.file, { readonly: true });
  try {
    const counted = {
      entities: db.prepare("select count(*) from entities where data is not null").pluck().get() as number,
      records: db.prepare("select count(*) from idempotency").pluck().get() as number,
      slots: db
        .prepare(
          "select min(slot) as min, max(slot) as max from (select slot from entities union all select slot from idempotency)",
        )
        .get() as {
        min: number;
        max: number;
      },
    };
    expect(shard.stats()).toMatchObject({ entities: counted.entities, idempotencyRecords: counted.records });
    expect(counted.slots.min).toBeGreaterThanOrEqual(shard.placement.slots.from);
    expect(counted.slots.max).toBeLessThanOrEqual(shard.placement.slots.to);
    return counted;
  } finally {
    db.close();
  }
}

/** A copy of `source` in `target`'s incoming folder, caught up and closed, ready to install as `shard`. */
async function copyInto(target: ShardSet, source: Shard, shard: number): Promise<string> {
  const file = target.incomingFile(shard);
  const { sequence } = await source.snapshot(file);
  const copy = await target.openIncoming(shard);
  try {
    copy.applyChanges(source.changesAfter(sequence, 1000));
  } finally {
    copy.close();
  }
  return file;
}

describe("a cluster member's data directory", () => {
  it("is created with the shards asked for, or with none, and names its member", async () => {
    const path = newDirectory();
    const three = await open(path, N1, 3);
    expect(readManifestFile(path)).toMatchObject({ member: N1, shards: [{ shard: 0 }, { shard: 1 }, { shard: 2 }] });
    expect(three.shards.map((shard) => shard.placement.shard)).toEqual([0, 1, 2]);

    const emptyPath = newDirectory();
    const empty = await open(emptyPath, N2, 0);
    expect(readManifestFile(emptyPath)).toMatchObject({ member: N2, shards: [] });
    expect(empty.shards).toEqual([]);
    expect(() => empty.shardAt(0)).toThrow(ShardNotHereError);
    expect(() => new EntityStore(empty).get("item", "a")).toThrow("no shard of this node holds slot");

    const single = newDirectory();
    await expect(open(single, undefined, 0)).rejects.toThrow("a new data directory needs 1-4096 shards, not 0");
    expect(existsSync(single)).toBe(false);
  });

  it("adopts a single node's directory with its shards and data, and then serves only that member", async () => {
    const path = newDirectory();
    const single = await open(path, undefined, 2);
    await fill(single);
    const before = { manifest: readManifestFile(path), digests: single.shards.map((shard) => shard.digest()) };
    single.close();

    const adopted = await open(path, N1);
    expect(readManifestFile(path)).toEqual({ ...before.manifest, member: N1 });
    expect(adopted.shards.map((shard) => shard.digest())).toEqual(before.digests);
    expect(new EntityStore(adopted).get("item", "i10").version).toBe(1);
    adopted.close();

    const manifestPath = join(path, MANIFEST_FILE);
    await expect(open(path, undefined)).rejects.toThrow(
      new DataDirectoryError(`${manifestPath} belongs to node n1 of cluster blue: it can only be served as that cluster member`),
    );
    await expect(open(path, N2)).rejects.toThrow(
      `${manifestPath} belongs to node n1 of cluster blue, not to node n2 of cluster blue`,
    );
    await expect(open(path, { cluster: "green", node: "n1" })).rejects.toThrow("not to node n1 of cluster green");
    expect(readManifestFile(path).member).toEqual(N1);
  });

  it("finishes an install that a crash cut before the manifest named the file, and deletes what a cut drop left", async () => {
    const path = newDirectory();
    const first = await open(path, N1);
    await fill(first);
    const copy = await copyInto(first, first.get(0)!, 1);
    await first.reshape(0, LOWER);
    const installed = await first.install({ shard: 1, slots: UPPER }, copy, 9);
    expect(installed.fence().epoch).toBe(9);
    first.close();
    unlistShard(path, 1);

    const restarted = await open(path, N1);
    expect(restarted.get(1)).toBeUndefined();
    // Not at the epoch the map gives: a leftover, deleted.
    expect(await restarted.reclaimInterruptedInstall(1, 10)).toBe(false);
    expect(existsSync(join(path, "shard-001.sqlite"))).toBe(false);
  });

  it("puts back for its install a copy a crash left unlisted at the epoch the map gives", async () => {
    const path = newDirectory();
    const first = await open(path, N1);
    await fill(first);
    const upper = first.get(0)!.digest(UPPER);
    const copy = await copyInto(first, first.get(0)!, 1);
    await first.reshape(0, LOWER);
    await first.install({ shard: 1, slots: UPPER }, copy, 9);
    first.close();
    unlistShard(path, 1);

    const restarted = await open(path, N1);
    expect(await restarted.reclaimInterruptedInstall(1, 9)).toBe(true);
    expect(existsSync(restarted.incomingFile(1))).toBe(true);
    const again = await restarted.install({ shard: 1, slots: UPPER }, restarted.incomingFile(1), 9);
    expect(again.digest()).toEqual({ ...upper, sequence: expect.any(Number) });
    expect(readManifestFile(path).shards.map((entry) => entry.shard)).toEqual([0, 1]);
  });

  it("splits a shard, moves half to another node and drops it, while a second process follows by reloading", async () => {
    const path = newDirectory();
    const primary = await open(path, N1);
    const worker = await open(path, N1);
    await fill(primary);
    const source = primary.get(0)!;
    const halves = { lower: source.digest(LOWER), upper: source.digest(UPPER) };

    // Split: a copy of shard 0 becomes shard 1 with the upper half; shard 0 keeps the lower.
    source.setFence({ epoch: 4, frozen: true });
    const incoming = await copyInto(primary, source, 1);
    await primary.reshape(0, LOWER);
    const installed = await primary.install({ shard: 1, slots: UPPER }, incoming, 9);
    source.setFence({ frozen: false });

    expect(existsSync(incoming)).toBe(false);
    expect(readManifestFile(path).shards).toEqual([
      { shard: 0, slots: LOWER, file: "shard-000.sqlite" },
      { shard: 1, slots: UPPER, file: "shard-001.sqlite" },
    ]);
    expect(installed.fence()).toEqual({ epoch: 9, frozen: false, followers: [] });
    expect(primary.get(0)!.digest()).toEqual({ ...halves.lower, sequence: expect.any(Number) });
    expect(installed.digest()).toEqual({ ...halves.upper, sequence: expect.any(Number) });
    for (const shard of primary.shards) expectSound(shard);
    const store = new EntityStore(primary);
    for (const id of IDS.slice(6)) expect(store.get("item", id).data).toBe(JSON.stringify({ id }));
    expect(primary.shardFor("item", UPPER_ID)).toBe(installed);

    // The worker still serves what it opened until it reloads.
    expect(worker.get(1)).toBeUndefined();
    expect(worker.get(0)!.placement.slots).toEqual({ from: 0, to: 4095 });
    await worker.reload();
    expect(worker.shards.map((shard) => shard.placement)).toEqual(primary.shards.map((shard) => shard.placement));
    const workerStore = new EntityStore(worker);
    for (const id of IDS.slice(6)) expect(workerStore.get("item", id).version).toBe(1);

    // Move: shard 1 goes to node n2, which joined empty, then n1 drops it.
    const otherPath = newDirectory();
    const other = await open(otherPath, N2, 0);
    installed.setFence({ frozen: true });
    const moved = await other.install({ shard: 1, slots: UPPER }, await copyInto(other, installed, 1), 15);
    expect(moved.digest()).toEqual({ ...halves.upper, sequence: expect.any(Number) });
    expect(moved.fence()).toEqual({ epoch: 15, frozen: false, followers: [] });

    await primary.drop(1);
    for (const suffix of ["", "-wal", "-shm"]) expect(existsSync(join(path, `shard-001.sqlite${suffix}`))).toBe(false);
    expect(readManifestFile(path).shards.map((entry) => entry.shard)).toEqual([0]);
    expect(() => primary.shardAt(UPPER.from)).toThrow(ShardNotHereError);
    await worker.reload();
    expect(worker.get(1)).toBeUndefined();
    expect(() => workerStore.get("item", UPPER_ID)).toThrow(ShardNotHereError);
    expect(new EntityStore(other).get("item", UPPER_ID).version).toBe(1);

    // A restart of each node finds what it holds.
    primary.close();
    worker.close();
    other.close();
    expect((await open(path, N1)).shards.map((shard) => shard.placement)).toEqual([{ shard: 0, slots: LOWER }]);
    expect((await open(otherPath, N2)).shards.map((shard) => shard.placement)).toEqual([{ shard: 1, slots: UPPER }]);
  });

  it("opens anew a shard that was dropped and installed again between two reloads", async () => {
    const path = newDirectory();
    const primary = await open(path, N1);
    const worker = await open(path, N1);
    await fill(primary);
    const copy = await copyInto(primary, primary.get(0)!, 7);
    await primary.reshape(0, { from: 0, to: 3999 });
    const first = await primary.install({ shard: 7, slots: { from: 4000, to: 4095 } }, copy, 1);
    await worker.reload();
    const before = worker.get(7)!;

    const copyAgain = await copyInto(primary, first, 7);
    await primary.drop(7);
    const again = await primary.install({ shard: 7, slots: { from: 4000, to: 4095 } }, copyAgain, 2);
    await worker.reload();
    expect(worker.get(7)).not.toBe(before);
    expect(worker.get(7)!.fence()).toEqual({ epoch: 2, frozen: false, followers: [] });
    expect(before.isWritable()).toBe(false);
    expect(again.fence()).toEqual(worker.get(7)!.fence());
  });

  it("refuses an install that would clash, or of a copy still open, and leaves the manifest as it was", async () => {
    const path = newDirectory();
    const shards = await open(path, N1);
    await fill(shards);
    const manifest = readManifestFile(path);
    const file = await copyInto(shards, shards.get(0)!, 3);

    await expect(shards.install({ shard: 0, slots: { from: 0, to: 10 } }, file, 1)).rejects.toThrow(
      "this node holds shard 0 already",
    );
    await expect(shards.install({ shard: 3, slots: { from: 100, to: 200 } }, file, 1)).rejects.toThrow(
      "slots 100-200 overlap shard 0's, 0-4095",
    );
    await expect(shards.install({ shard: 3, slots: { from: 5000, to: 5001 } }, file, 1)).rejects.toThrow(
      "not a range within 0-4095",
    );
    await expect(shards.install({ shard: -1, slots: { from: 0, to: 1 } }, file, 1)).rejects.toThrow(RangeError);
    await shards.reshape(0, LOWER);
    await expect(shards.install({ shard: 3, slots: UPPER }, file, -2)).rejects.toThrow("epoch -2");

    const stillOpen = await shards.openIncoming(3);
    cleanups.push(() => stillOpen.close());
    await expect(shards.install({ shard: 3, slots: UPPER }, file, 1)).rejects.toThrow("(is the copy still open?)");
    expect(readManifestFile(path).shards).toEqual([{ ...manifest.shards[0], slots: LOWER }]);
    expect(existsSync(join(path, "shard-003.sqlite"))).toBe(false);
    stillOpen.close();
    // The refused install left the copy usable: the same install now completes.
    await shards.install({ shard: 3, slots: UPPER }, file, 1);
    expect(expectSound(shards.get(3)!).entities).toBe(IDS.slice(6).filter(isUpper).length);

    await expect(shards.reshape(3, { from: 100, to: 200 })).rejects.toThrow("which do not hold 100-200");
    await expect(shards.drop(5)).rejects.toThrow("this node holds no shard 5");
  });

  it("never changes a single node's shards", async () => {
    const path = newDirectory();
    const single = await open(path, undefined, 2);
    const file = await copyInto(single, single.get(0)!, 5);
    const refusal = `${path} is a single node's: its shards never change`;
    await expect(single.install({ shard: 5, slots: { from: 0, to: 1 } }, file, 1)).rejects.toThrow(refusal);
    await expect(single.reshape(0, { from: 0, to: 10 })).rejects.toThrow(refusal);
    await expect(single.drop(1)).rejects.toThrow(refusal);
    expect(single.shards).toHaveLength(2);
  });

  it("finishes at start-up a reshape that stopped between the manifest and the file", async () => {
    const path = newDirectory();
    const shards = await open(path, N1);
    await fill(shards);
    const lower = shards.get(0)!.digest(LOWER);
    shards.close();
    // What a crash right after the manifest write leaves: the file still holds every slot.
    const manifest = readManifestFile(path);
    writeFileSync(join(path, MANIFEST_FILE), JSON.stringify({ ...manifest, shards: [{ ...manifest.shards[0], slots: LOWER }] }));

    const reopened = await open(path, N1);
    const shard = reopened.get(0)!;
    expect(shard.placement.slots).toEqual(LOWER);
    expect(shard.digest({ from: 0, to: 4095 })).toEqual({ ...lower, sequence: expect.any(Number) });
    expectSound(shard);
  });

  it("tolerates a shard file the manifest does not name (an interrupted install or drop); a single node does not", async () => {
    const path = newDirectory();
    const member = await open(path, N1);
    await fill(member);
    // A real WAL of another database left beside the name: replayed into the installed file, it
    // would overwrite its pages.
    const stray = join(path, "shard-004.sqlite");
    const other = new Database(stray);
    other.pragma("journal_mode = WAL");
    other.pragma("wal_autocheckpoint = 0");
    other.exec(
      "create table intruder (x); with recursive n(i) as (select 1 union all select i + 1 from n where i < 500) insert into intruder select i from n",
    );
    const staleWal = readFileSync(`${stray}-wal`);
    other.close();
    writeFileSync(`${stray}-wal`, staleWal);
    member.close();

    const reopened = await open(path, N1);
    const upper = reopened.get(0)!.digest(UPPER);
    const copy = await copyInto(reopened, reopened.get(0)!, 4);
    await reopened.reshape(0, LOWER);
    await reopened.install({ shard: 4, slots: UPPER }, copy, 3);
    const tables = new Database(stray, { readonly: true });
    cleanups.push(() => tables.close());
    expect(tables.prepare("select name from sqlite_master where name = 'intruder'").all()).toEqual([]);
    expect(reopened.get(4)!.digest()).toEqual({ ...upper, sequence: expect.any(Number) });
    expectSound(reopened.get(4)!);

    const singlePath = newDirectory();
    (await open(singlePath, undefined)).close();
    writeFileSync(join(singlePath, "shard-004.sqlite"), "");
    await expect(open(singlePath, undefined)).rejects.toThrow(
      `${join(singlePath, "shard-004.sqlite")} is not listed in ${MANIFEST_FILE}`,
    );
  });
});

describe("the manifest of a cluster member", () => {
  const PATH = "/data/manifest.json";
  const base = { ...newManifest(0, N1) };
  const entry = (shard: number, from: number, to: number) => ({
    shard,
    slots: { from, to },
    file: `shard-${String(shard).padStart(3, "0")}.sqlite`,
  });
  const parse = (manifest: object) => parseManifest(JSON.stringify(manifest), PATH);

  it.each([
    ["none", []],
    ["any numbers, gaps between the ranges, any order", [entry(9, 3000, 4095), entry(5, 0, 10), entry(1234, 11, 11)]],
  ])("holds any set of shards: %s", (_name, shards) => {
    expect(parse({ ...base, shards }).shards).toEqual(shards);
  });

  it.each([
    ["a number listed twice", [entry(1, 0, 10), entry(1, 20, 30)], "shard 1 is listed twice"],
    ["overlapping ranges", [entry(1, 0, 100), entry(2, 100, 200)], "shards 1 and 2 both hold slot 100"],
    [
      "a range past the last slot",
      [entry(1, 4000, 4096)],
      'shard 1 has slots {"from":4000,"to":4096}, not a range within 0-4095',
    ],
    ["a backwards range", [entry(1, 10, 9)], 'shard 1 has slots {"from":10,"to":9}, not a range within 0-4095'],
    ["a negative number", [entry(-1, 0, 9)], "entry 0 has shard -1, not a shard number"],
    ["a fractional number", [{ ...entry(1, 0, 9), shard: 1.5 }], "entry 0 has shard 1.5, not a shard number"],
    ["a file of another number", [{ ...entry(1, 0, 9), file: "shard-002.sqlite" }], "shard 1 names file shard-002.sqlite"],
  ])("refuses %s, naming the file", (_name, shards, why) => {
    expect(() => parse({ ...base, shards })).toThrow(new DataDirectoryError(`${PATH} is not a valid apostate manifest: ${why}`));
  });

  it.each([
    ["no node", { cluster: "blue" }],
    ["an empty cluster", { cluster: "", node: "n1" }],
    ["not an object", "n1"],
  ])("refuses a member with %s", (_name, member) => {
    expect(() => parse({ ...base, member, shards: [] })).toThrow(
      `${PATH} is not a valid apostate manifest: member is not a {cluster, node} pair of names`,
    );
  });

  it("keeps a single node's rules: every slot covered once, numbered from 0", () => {
    const { member: _member, ...single } = base;
    expect(() => parse({ ...single, shards: [] })).toThrow(`${PATH} is not a valid apostate manifest: no shards`);
    expect(() => parse({ ...single, shards: [entry(0, 0, 10), entry(1, 20, 4095)] })).toThrow(
      "shard 1 does not start at slot 11",
    );
    expect(() => parse({ ...single, shards: [entry(0, 0, 4000)] })).toThrow("the shards end at slot 4000, not 4095");
  });

  it("is refused at open with the manifest's path", async () => {
    const path = newDirectory();
    (await open(path, N1, 1)).close();
    const manifest = readManifestFile(path);
    writeFileSync(join(path, MANIFEST_FILE), JSON.stringify({ ...manifest, shards: [...manifest.shards, entry(0, 0, 1)] }));
    await expect(open(path, N1)).rejects.toThrow(
      `${join(path, MANIFEST_FILE)} is not a valid apostate manifest: shard 0 is listed twice`,
    );
  });
});
