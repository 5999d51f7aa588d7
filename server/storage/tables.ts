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

interface IdempotencyTable {
  type: string;
  id: string;
  key: string;
  fingerprint: string;
  status: number;
  etag: string | null;
  location: string | null;
  body: string | null;
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
}

export interface ShardDatabase {
  entities: EntityTable;
  idempotency: IdempotencyTable;
  shard_state: ShardStateTable;
}

export type EntityRow = Selectable<EntityTable>;
export type IdempotencyRow = Selectable<IdempotencyTable>;
export type ShardStateRow = Selectable<ShardStateTable>;
