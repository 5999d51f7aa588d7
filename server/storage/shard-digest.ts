import { createHash } from "node:crypto";
import type Database from "better-sqlite3";

/** What two copies of a shard compare before a move switches the map. */
export interface ShardDigest {
  /** The shard's change sequence, from the same snapshot as the rest. */
  sequence: number;
  /** Live entities in the slot range. */
  entities: number;
  /** Entity rows in the slot range, tombstones included. */
  rows: number;
  /** SHA-256 (hex) of every row's type, id, version and data, in (type, id) order. */
  checksum: string;
}

/**
 * Digests the entity rows of the slots `from`-`to` in one snapshot. Each row is hashed as the
 * JSON text of `[type, id, version, data]` and a newline: JSON escapes every newline and quote
 * inside a string, so no two sequences of rows hash the same input, and the rows are read in
 * primary-key order, so two copies with the same rows agree whatever their page layout.
 */
export function digestShard(db: Database.Database, slots: { from: number; to: number }): ShardDigest {
  return db
    .transaction(() => {
      const sequence = db.prepare("select sequence from shard_state").pluck().get() as number;
      const hash = createHash("sha256");
      let rows = 0;
      let entities = 0;
      // `+slot` keeps SQLite off the slot index: the primary key's own order needs no sort.
      const iterate = db
        .prepare("select type, id, version, data from entities where +slot between ? and ? order by type, id")
        .raw()
        .iterate(slots.from, slots.to) as IterableIterator<[string, string, number, string | null]>;
      for (const row of iterate) {
        hash.update(`${JSON.stringify(row)}\n`);
        rows += 1;
        if (row[3] !== null) entities += 1;
      }
      return { sequence, entities, rows, checksum: hash.digest("hex") };
    })
    .deferred();
}
