import { afterEach, describe, expect, it } from "vitest";
import { EntityStore, type Mutation } from "../../server/entities/entity-store.js";
import type { ShardSet } from "../../server/storage/data-directory.js";
import type { ReplicaBatch } from "../../server/storage/shard.js";
import type { ShardChanges } from "../../server/storage/shard-changes.js";
import { ShardFrozenError } from "../../server/storage/storage-errors.js";
import { openMemberDirectory } from "../support/member-directory.js";

/*
 * Replication at the storage layer: what a committed batch hands its followers, when its writes
 * are acknowledged, and how a follower's copy takes (or refuses) a shipped batch.
 */
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** A member's directory whose shard ships every guarded batch to `ship` (the guard lets everything through). */
async function openOwner(ship: (batch: ReplicaBatch) => Promise<void>): Promise<{ shards: ShardSet; store: EntityStore }> {
  const shards = await openMemberDirectory(cleanups, { guard: () => undefined, ship });
  return { shards, store: new EntityStore(shards) };
}

function openCopy(): Promise<ShardSet> {
  return openMemberDirectory(cleanups, { node: "n2" });
}

const put = (id: string, options: { key?: string; ifMatch?: number[] } = {}): Mutation => ({
  type: "acct",
  id,
  preconditions: options.ifMatch ? { ifMatch: options.ifMatch } : {},
  ...(options.key && { idempotency: { key: options.key, fingerprint: `fp-${options.key}` } }),
});

describe("an owner's batches", () => {
  it("ship nothing while the file names no followers", async () => {
    const shipped: ReplicaBatch[] = [];
    const { store } = await openOwner(async (batch) => void shipped.push(batch));
    await store.put(put("a"), { n: 1 });
    expect(shipped).toEqual([]);
  });

  it("ship exactly the rows they committed, from the sequence before them to their last, with the file's epoch and followers", async () => {
    const shipped: ReplicaBatch[] = [];
    const { shards, store } = await openOwner(async (batch) => void shipped.push(batch));
    await store.put(put("a"), { n: 0 });
    shards.get(0)!.setFence({ epoch: 5, followers: ["n3", "n2"] });
    // One event-loop turn: one batch, each write in a savepoint; the If-Match one fails alone.
    const outcomes = await Promise.allSettled([
      store.put(put("a", { key: "k1" }), { n: 1 }),
      store.put(put("b", { ifMatch: [9] }), { n: 1 }),
      store.put(put("c"), { n: 1 }),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(shipped).toHaveLength(1);
    const [batch] = shipped as [ReplicaBatch];
    expect(batch).toMatchObject({ shard: 0, epoch: 5, followers: ["n2", "n3"] });
    expect(batch.changes.after).toBe(1);
    expect(batch.changes.upTo).toBe(shards.get(0)!.state().sequence);
    expect(batch.changes.entities.map((row) => [row.id, row.version])).toEqual([
      ["a", 2],
      ["c", 1],
    ]);
    expect(batch.changes.idempotency.map((row) => [row.id, row.key])).toEqual([["a", "k1"]]);
  });

  it("are acknowledged only once the followers have them, and fail with the shipment's error (committed here, for a retry to replay)", async () => {
    let release: (() => void) | undefined;
    let refuse: ((error: Error) => void) | undefined;
    const { shards, store } = await openOwner(
      () =>
        new Promise<void>((resolve, reject) => {
          release = resolve;
          refuse = reject;
        }),
    );
    shards.get(0)!.setFence({ epoch: 1, followers: ["n2"] });
    let acknowledged = false;
    const first = store.put(put("a", { key: "k1" }), { n: 1 }).then(() => (acknowledged = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(acknowledged).toBe(false);
    release?.();
    await first;
    expect(acknowledged).toBe(true);

    const second = store.put(put("b", { key: "k2" }), { n: 1 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    refuse?.(new Error("the follower holds a newer epoch"));
    await expect(second).rejects.toThrow("newer epoch");
    expect(shards.get(0)!.readEntity("acct", "b")?.version).toBe(1);
  });

  it("answer a replay on a replicated shard through the queue, whose empty batch reaches the followers first", async () => {
    const shipped: ReplicaBatch[] = [];
    const { shards, store } = await openOwner(async (batch) => void shipped.push(batch));
    shards.get(0)!.setFence({ epoch: 1, followers: ["n2"] });
    await store.put(put("a", { key: "k1" }), { n: 1 });
    const sequence = shards.get(0)!.state().sequence;
    const replayed = await store.put(put("a", { key: "k1" }), { n: 1 });
    expect(replayed.replayed).toBe(true);
    expect(shipped).toHaveLength(2);
    expect(shipped[1]?.changes).toMatchObject({ after: sequence, upTo: sequence, entities: [], idempotency: [] });
  });
});

describe("a follower's copy", () => {
  const batch = (after: number, upTo: number, ids: string[]): ShardChanges => ({
    after,
    upTo,
    frozen: false,
    entities: ids.map((id, index) => ({
      type: "acct",
      id,
      slot: 0,
      version: 1,
      data: JSON.stringify({ id }),
      created_at: "2026-12-03T00:00:00.000Z",
      updated_at: "2026-12-03T00:00:00.000Z",
      sequence: after + index + 1,
    })),
    idempotency: [],
  });

  it("applies a batch that starts where it stands, takes its epoch and is in sync from then on", async () => {
    const copy = (await openCopy()).get(0)!;
    copy.setFence({ epoch: 4 });
    expect(copy.replicaState()).toEqual({ applied: true, sequence: 0, epoch: 4, synced: false });
    const slots = copy.placement.slots;
    const rows = batch(0, 2, ["x", "y"]);
    for (const row of rows.entities) row.slot = slots.from;
    expect(copy.applyReplica(6, rows)).toEqual({ applied: true, sequence: 2, epoch: 6, synced: true });
    expect(copy.readEntity("acct", "y")?.data).toBe(JSON.stringify({ id: "y" }));
    // Again: nothing changes.
    expect(copy.applyReplica(6, rows)).toEqual({ applied: true, sequence: 2, epoch: 6, synced: true });
    expect(copy.stats().entities).toBe(2);
  });

  it("refuses a batch from an older epoch, one that leaves a gap, and any while it is frozen, writing nothing", async () => {
    const copy = (await openCopy()).get(0)!;
    copy.setFence({ epoch: 9 });
    expect(copy.applyReplica(8, batch(0, 1, ["x"]))).toEqual({ applied: false, sequence: 0, epoch: 9, synced: false });
    expect(copy.applyReplica(9, batch(3, 4, ["x"]))).toEqual({ applied: false, sequence: 0, epoch: 9, synced: false });
    // Frozen: its node is replacing or dropping it.
    copy.setFence({ frozen: true });
    expect(() => copy.applyReplica(9, batch(0, 1, ["x"]))).toThrow(ShardFrozenError);
    expect(copy.readEntity("acct", "x")).toBeUndefined();
    expect(copy.state().sequence).toBe(0);
  });
});
