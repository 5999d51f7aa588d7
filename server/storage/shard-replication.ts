import type Database from "better-sqlite3";
import { applyChanges, type ShardChanges } from "./shard-changes.js";
import { perConnection } from "./per-connection.js";
import { ShardFrozenError } from "./storage-errors.js";
import type { ShardStateRow } from "./tables.js";

/** A follower's answer to a shipped batch, and its figures: where its copy stands. */
export interface ReplicaAck {
  /** Whether the batch was applied (or held already): false when refused for its epoch or a gap. */
  applied: boolean;
  sequence: number;
  epoch: number;
  /** Whether the copy has applied a batch from its owner's write path (see the `synced` column). */
  synced: boolean;
}

type ReplicaColumns = Pick<ShardStateRow, "sequence" | "epoch" | "synced" | "frozen">;

function ackOf(applied: boolean, row: ReplicaColumns): ReplicaAck {
  return { applied, sequence: row.sequence, epoch: row.epoch, synced: row.synced !== 0 };
}

const statements = perConnection(prepare);

function prepare(db: Database.Database) {
  return {
    selectState: db.prepare("select sequence, epoch, synced, frozen from shard_state"),
    markApplied: db.prepare("update shard_state set epoch = max(epoch, ?), synced = 1"),
  };
}

export function readReplicaState(db: Database.Database): ReplicaAck {
  return ackOf(true, statements(db).selectState.get() as ReplicaColumns);
}

/**
 * A follower's side of a shipped batch, in one immediate transaction (as durable as the
 * connection's `synchronous` makes it). Refused, with nothing written, when the batch's epoch is
 * older than the copy's (its sender has been replaced, or the coordinator fenced this copy to
 * promote one: the old owner must acknowledge nothing more) or when it starts after the copy's
 * sequence (the owner then sends what lies between, from its file). Otherwise its rows are
 * applied as a move's tail applies them (idempotently), the copy takes the batch's epoch if it
 * is newer, and it counts as in sync from then on. A frozen copy takes nothing (ShardFrozenError,
 * to be tried again): its node froze it because it is being replaced by a fresh copy or dropped,
 * and what it took would be lost with it.
 */
export function applyReplica(db: Database.Database, epoch: number, changes: ShardChanges): ReplicaAck {
  return db
    .transaction(() => {
      const { selectState, markApplied } = statements(db);
      const state = selectState.get() as ReplicaColumns;
      if (state.frozen !== 0) throw new ShardFrozenError("this copy is being replaced or dropped: it takes no batch");
      if (epoch < state.epoch || changes.after > state.sequence) return ackOf(false, state);
      applyChanges(db, changes);
      markApplied.run(epoch);
      return readReplicaState(db);
    })
    .immediate();
}
