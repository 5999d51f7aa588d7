import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { slotOf } from "../../schema/placement.js";
import { EntityStore, type Mutation } from "../../server/entities/entity-store.js";
import { toProblem } from "../../server/http/problem-mapper.js";
import { ProblemError } from "../../server/http/problems.js";
import { openDataDirectory, type OpenOptions, type ShardSet } from "../../server/storage/data-directory.js";
import type { ShardFence } from "../../server/storage/shard-fence.js";
import type { ShardPlacement, WriteGuard } from "../../server/storage/shard.js";
import { ShardFrozenError, ShardNotHereError } from "../../server/storage/storage-errors.js";
import { tempDir } from "../support/temp-dir.js";

/*
 * The fence lives in the shard file: an epoch and a frozen flag, read by a cluster's write guard
 * inside each batch's own transaction, so a refusal leaves nothing written.
 */
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

const MEMBER = { cluster: "test", node: "n1" };

async function open(path: string, extra: Partial<OpenOptions> = {}): Promise<ShardSet> {
  const shards = await openDataDirectory(path, {
    shardCount: 1,
    durability: "process",
    busyTimeoutMs: 5000,
    verify: false,
    member: MEMBER,
    ...extra,
  });
  cleanups.push(() => shards.close());
  return shards;
}

function newDirectory(): string {
  const dir = tempDir();
  cleanups.push(() => dir.remove());
  return dir.path;
}

const put = (id: string, key?: string): Mutation => ({
  type: "acct",
  id,
  preconditions: {},
  ...(key && { idempotency: { key, fingerprint: `fp-${key}` } }),
});

function countRows(file: string): { entities: number; records: number; sequence: number } {
  const db = new Database(file, { readonly: true });
  try {
    return {
      entities: db.prepare("select count(*) from entities").pluck().get() as number,
      records: db.prepare("select count(*) from idempotency").pluck().get() as number,
      sequence: db.prepare("select sequence from shard_state").pluck().get() as number,
    };
  } finally {
    db.close();
  }
}

describe("the shard fence", () => {
  it("starts unfenced, persists each change across a reopen and never lets the epoch go back", async () => {
    const path = newDirectory();
    const first = await open(path);
    const shard = first.get(0)!;
    expect(shard.fence()).toEqual({ epoch: 0, frozen: false, followers: [] });
    expect(shard.setFence({ epoch: 7 })).toEqual({ epoch: 7, frozen: false, followers: [] });
    expect(shard.setFence({ frozen: true })).toEqual({ epoch: 7, frozen: true, followers: [] });
    // The followers a batch must reach, kept sorted, whatever order the map names them in.
    expect(shard.setFence({ followers: ["n3", "n2"] })).toEqual({ epoch: 7, frozen: true, followers: ["n2", "n3"] });
    expect(shard.setFence({ followers: [] })).toEqual({ epoch: 7, frozen: true, followers: [] });
    expect(() => shard.setFence({ epoch: 6 })).toThrow(RangeError);
    expect(() => shard.setFence({ epoch: 7.5 })).toThrow(RangeError);
    expect(shard.fence()).toEqual({ epoch: 7, frozen: true, followers: [] });
    first.close();

    const second = await open(path);
    expect(second.get(0)!.fence()).toEqual({ epoch: 7, frozen: true, followers: [] });
    expect(second.get(0)!.setFence({ epoch: 9, frozen: false })).toEqual({ epoch: 9, frozen: false, followers: [] });
    // Another process sees what was committed.
    const other = new Database(second.get(0)!.file, { readonly: true });
    cleanups.push(() => other.close());
    expect(other.prepare("select epoch, frozen, followers from shard_state").get()).toEqual({
      epoch: 9,
      frozen: 0,
      followers: "[]",
    });
  });

  it("refuses a whole batch when the guard throws: nothing is written and every write rejects with the guard's error", async () => {
    const shards = await open(newDirectory());
    const store = new EntityStore(shards);
    await store.put(put("before"), { n: 0 });
    const shard = shards.get(0)!;
    const before = countRows(shard.file);

    const refusal = new ShardFrozenError("shard 0 is frozen");
    const seen: { placement: ShardPlacement; fence: ShardFence }[] = [];
    shards.setGuard((placement, fence) => {
      seen.push({ placement, fence });
      if (fence.frozen) throw refusal;
    });
    shard.setFence({ epoch: 3, frozen: true });
    const writes = [
      store.put(put("a"), { n: 1 }),
      store.put(put("b", "key-b"), { n: 2 }),
      store.delete(put("before", "key-delete")),
      store.ops(put("c"), { if: [], do: [{ op: "inc", path: "/n", value: 1 }], upsert: true }),
    ];
    const outcomes = await Promise.allSettled(writes);
    expect(outcomes).toEqual(writes.map(() => ({ status: "rejected", reason: refusal })));
    // One batch, one check.
    expect(seen).toEqual([
      { placement: { shard: 0, slots: { from: 0, to: 4095 } }, fence: { epoch: 3, frozen: true, followers: [] } },
    ]);
    expect(countRows(shard.file)).toEqual(before);
    expect(shard.stats()).toMatchObject({ entities: 1, idempotencyRecords: 0 });

    // The same writes pass once the fence thaws, and the guard saw the fence of their own batch.
    shard.setFence({ frozen: false });
    await Promise.all([store.put(put("a"), { n: 1 }), store.put(put("b", "key-b"), { n: 2 })]);
    expect(seen.at(-1)?.fence).toEqual({ epoch: 3, frozen: false, followers: [] });
    expect(countRows(shard.file)).toMatchObject({ entities: 3, records: 1 });
  });

  it("reads the fence a write's own transaction holds, whichever process changed it", async () => {
    const path = newDirectory();
    const guarded = await open(path);
    const other = await open(path);
    const epochs: number[] = [];
    const guard: WriteGuard = (_placement, fence) => {
      epochs.push(fence.epoch);
      if (fence.epoch !== 5) throw new Error(`epoch ${fence.epoch} is not the map's 5`);
    };
    guarded.setGuard(guard);
    const store = new EntityStore(guarded);

    await expect(store.put(put("x"), {})).rejects.toThrow("epoch 0 is not the map's 5");
    other.get(0)!.setFence({ epoch: 5 });
    await expect(store.put(put("x"), {})).resolves.toMatchObject({ kind: "created" });
    other.get(0)!.setFence({ epoch: 6 });
    await expect(store.put(put("x"), {})).rejects.toThrow("epoch 6 is not the map's 5");
    expect(epochs).toEqual([0, 5, 6]);
  });

  it("writes on a frozen shard when no guard is set (a single node reads no fence)", async () => {
    const shards = await open(newDirectory(), { member: undefined });
    shards.get(0)!.setFence({ frozen: true });
    await expect(new EntityStore(shards).put(put("free"), {})).resolves.toMatchObject({ kind: "created" });
  });

  /**
   * Shard 0 narrowed to slots 0-2047 by one process (the primary, in a split) while another (a
   * guarded worker) still routes by 0-4095; `id` is a key of the slots the shard gave up.
   */
  async function narrowedUnderAStaleProcess() {
    const path = newDirectory();
    const stale = await open(path);
    stale.setGuard(() => {});
    const primary = await open(path);
    await primary.reshape(0, { from: 0, to: 2047 });
    const id = Array.from({ length: 100 }, (_, i) => `k${i}`).find((candidate) => slotOf("acct", candidate) > 2047)!;
    return { stale, primary, store: new EntityStore(stale), id };
  }

  it("fails a guarded write routed by a slot range that another process has narrowed since", async () => {
    const { stale, primary, store, id } = await narrowedUnderAStaleProcess();
    expect(() => primary.shardFor("acct", id)).toThrow(ShardNotHereError);
    expect(stale.get(0)!.placement.slots).toEqual({ from: 0, to: 4095 });
    // A read that finds nothing may not answer "absent": the key lives in the other half now.
    expect(() => store.get("acct", id)).toThrow(ShardNotHereError);
    const outcome = store.put(put(id), {});
    await expect(outcome).rejects.toBeInstanceOf(ShardNotHereError);
    await expect(outcome).rejects.toThrow("now holds slots 0-2047, not 0-4095");
    expect(countRows(primary.get(0)!.file).entities).toBe(0);

    await stale.reload();
    expect(stale.get(0)!.placement.slots).toEqual({ from: 0, to: 2047 });
  });

  it("fails a write routed to a shard before a split narrowed it, even when this process caught up before the write's batch ran", async () => {
    const { stale, primary, store, id } = await narrowedUnderAStaleProcess();
    // Routed by the old range and queued; the reload narrows the shard in memory before the
    // batch runs, so the guard finds the file's range and this process's equal.
    const outcome = store.put(put(id, "key-1"), { n: 1 });
    await stale.reload();
    expect(stale.get(0)!.placement.slots).toEqual({ from: 0, to: 2047 });
    await expect(outcome).rejects.toBeInstanceOf(ShardNotHereError);
    await expect(outcome).rejects.toThrow(`acct/${id} (slot ${slotOf("acct", id)}) is not in this shard any more`);
    expect(countRows(primary.get(0)!.file)).toMatchObject({ entities: 0, records: 0 });
  });

  it("fails a list that another process's split cut short, instead of answering a page without the moved half", async () => {
    const path = newDirectory();
    const stale = await open(path);
    const store = new EntityStore(stale);
    const ids = Array.from({ length: 40 }, (_, i) => `k${i}`);
    for (const id of ids) await store.put(put(id), { id });
    const lower = ids.filter((id) => slotOf("acct", id) <= 2047).sort();
    expect(lower.length).toBeGreaterThan(0);
    expect(lower.length).toBeLessThan(ids.length);
    const page = () =>
      store.list("acct", { prefix: "", limit: 100 }).items.map((item) => (JSON.parse(item) as { id: string }).id);
    expect(page()).toHaveLength(ids.length);

    await (await open(path)).reshape(0, { from: 0, to: 2047 });
    // The file lost its upper half, which this process would not find in any shard it knows.
    expect(page).toThrow(ShardNotHereError);
    await stale.reload();
    expect(page()).toEqual(lower);
  });

  it("fails a write whose shard closed before its batch ran (dropped, moved away, stopping) as one to retry, writing nothing", async () => {
    const path = newDirectory();
    const shards = await openDataDirectory(path, { shardCount: 1, durability: "process", busyTimeoutMs: 5000, verify: false });
    const outcome = new EntityStore(shards).put(put("late"), {});
    shards.close();
    await expect(outcome).rejects.toBeInstanceOf(ShardNotHereError);
    expect(toProblem(await outcome.catch((error: unknown) => error))).toMatchObject({ status: 503, code: "unavailable" });
    expect(countRows(join(path, "shard-000.sqlite")).entities).toBe(0);
  });

  it("turns a guard's ShardFrozenError and a missing shard into 503 unavailable with Retry-After: 1", async () => {
    const shards = await open(newDirectory());
    shards.setGuard(() => {
      throw new ShardFrozenError("shard 0 is frozen");
    });
    const store = new EntityStore(shards);
    const frozen = toProblem(await store.put(put("x"), {}).catch((error: unknown) => error));
    const missing = toProblem(new ShardNotHereError("no shard of this node holds slot 5"));
    for (const problem of [frozen, missing]) {
      expect(problem).toBeInstanceOf(ProblemError);
      expect(problem).toMatchObject({ status: 503, code: "unavailable", options: { headers: { "Retry-After": "1" } } });
    }
  });
});
