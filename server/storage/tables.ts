import type { Selectable } from "kysely";

/** The row types of a shard file; schema/migrations creates the tables. */
interface EntityTable {
  type: string;
  id: string;
  slot: number;
  version: number;
  /** The data object as JSON text; NULL for a tombstone. */
  data: string | null;
  created_at: string;
  updated_at: string;
  sequence: number;
}

/** What a recorded write did to its entity. */
export type WriteKind = "created" | "updated" | "deleted";

/** An idempotency record: the request's fingerprint and what its write did, to answer a replay. */
interface IdempotencyTable {
  type: string;
  id: string;
  key: string;
  /** The entity's slot: records move with their entity's slot range. */
  slot: number;
  /** The shard change sequence of the write that recorded it (0 for records older than the column). */
  sequence: number;
  fingerprint: string;
  kind: WriteKind;
  /** The entity's version after the write; null for a delete. */
  version: number | null;
  /** The entity's representation after the write, as JSON text; null for a delete. */
  representation: string | null;
  /** Unix milliseconds, for the retention purge. */
  created_at: number;
}

interface ShardStateTable {
  singleton: number;
  shard: number;
  slot_from: number;
  slot_to: number;
  sequence: number;
  last_write_at: string | null;
  /** Running tally of live entities (tombstones not counted), kept by every write. */
  entities: number;
  /** Running tally of idempotency records, kept by every record and purge. */
  idempotency_records: number;
  /** 1 once the shard was closed cleanly; 0 while a server has it open for writing. */
  clean_close: number;
  /** The map revision at which the shard's owner last changed (0: never fenced); see ShardFence. */
  epoch: number;
  /** 1 while the shard is frozen for a move: the cluster's write guard refuses every write. */
  frozen: number;
  /** The followers every write batch must reach, as a sorted JSON array of node ids; see ShardFence. */
  followers: string;
  /** 1 on a follower's copy once it has applied a batch its owner shipped from the write path. */
  synced: number;
}

export interface ShardDatabase {
  entities: EntityTable;
  idempotency: IdempotencyTable;
  shard_state: ShardStateTable;
}

export type EntityRow = Selectable<EntityTable>;
/** The columns of a live entity that its representation needs, which is all a list reads. */
export type ListedEntityRow = Pick<EntityRow, "type" | "id" | "version" | "created_at" | "updated_at"> & { data: string };
export type IdempotencyRow = Selectable<IdempotencyTable>;
export type ShardStateRow = Selectable<ShardStateTable>;
