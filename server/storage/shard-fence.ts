import type Database from "better-sqlite3";
import type { ShardStateRow } from "./tables.js";

/**
 * What a shard file records for a cluster's fencing: the epoch it was given (the map revision
 * at which its owner last changed; 0 = never fenced), whether it is frozen for a move, and the
 * followers its write batches must reach (empty without replicas). A node writes to a shard only
 * while its map names it the owner at the file's epoch with the same followers; the check runs
 * under SQLite's write lock, in the write's own transaction (see WriteGuard), so no batch is
 * acknowledged without a follower the map has just added.
 */
export interface ShardFence {
  epoch: number;
  frozen: boolean;
  /** Node ids, sorted. */
  followers: string[];
}

type FenceColumns = Pick<ShardStateRow, "epoch" | "frozen" | "followers">;

export function fenceOf(row: FenceColumns): ShardFence {
  return { epoch: row.epoch, frozen: row.frozen !== 0, followers: JSON.parse(row.followers) as string[] };
}

export function readFence(db: Database.Database): ShardFence {
  return fenceOf(db.prepare("select epoch, frozen, followers from shard_state").get() as FenceColumns);
}

/**
 * Changes the fence under the write lock and returns it as committed. An epoch only grows:
 * going back would let an owner that was replaced write again.
 */
export function writeFence(db: Database.Database, change: Partial<ShardFence>): ShardFence {
  return db
    .transaction(() => {
      const current = readFence(db);
      const next = {
        epoch: change.epoch ?? current.epoch,
        frozen: change.frozen ?? current.frozen,
        followers: [...(change.followers ?? current.followers)].sort(),
      };
      if (!Number.isSafeInteger(next.epoch) || next.epoch < current.epoch) {
        throw new RangeError(`epoch ${next.epoch} is not an integer at least the shard's epoch ${current.epoch}`);
      }
      db.prepare("update shard_state set epoch = ?, frozen = ?, followers = ?").run(
        next.epoch,
        Number(next.frozen),
        JSON.stringify(next.followers),
      );
      return next;
    })
    .immediate();
}
