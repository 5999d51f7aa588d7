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
  /**
   * SHA-256 (hex) of the type, id, version and data of every row in the range, in (type, id)
   * order: of those written after `after`, when that is given.
   */
  checksum: string;
  /** The sequence the checksum starts after; absent when it covers every row. */
  after?: number;
}

type DigestedRow = [type: string, id: string, version: number, data: string | null];

/**
 * Digests the entity rows of the slots `from`-`to` in one snapshot. Each row is hashed as the
 * JSON text of `[type, id, version, data]` and a newline: JSON escapes every newline and quote
 * inside a string, so no two sequences of rows hash the same input, and the rows are read in
 * primary-key order, so two copies with the same rows agree whatever their page layout.
 *
 * With `after`, the checksum covers only the rows written after that sequence (the counts still
 * cover every row): a move that has verified its copy as of `after` compares the tail alone
 * while the shard is frozen, instead of hashing every row then.
 */
export function digestShard(db: Database.Database, slots: { from: number; to: number }, after?: number): ShardDigest {
  if (after !== undefined && (!Number.isSafeInteger(after) || after < 0)) {
    throw new RangeError(`after must be a sequence (0 or more), not ${after}`);
  }
  return db
    .transaction(() => {
      const sequence = db.prepare("select sequence from shard_state").pluck().get() as number;
      const hash = createHash("sha256");
      let rows = 0;
      let entities = 0;
      // `+slot` keeps SQLite off the slot index: the primary key's own order needs no sort.
      const select = "select type, id, version, data from entities where +slot between @from and @to";
      const range = { from: slots.from, to: slots.to };
      const hashed =
        after === undefined
          ? db.prepare(`${select} order by type, id`).raw().iterate(range)
          : db
              .prepare(`${select} and sequence > @after order by type, id`)
              .raw()
              .iterate({ ...range, after });
      for (const row of hashed as IterableIterator<DigestedRow>) {
        hash.update(`${JSON.stringify(row)}\n`);
        rows += 1;
        if (row[3] !== null) entities += 1;
      }
      if (after === undefined) return { sequence, entities, rows, checksum: hash.digest("hex") };
      // A scan of the table in key order: through the slot index it looks up every row on its own, 20 times slower.
      const counted = db
        .prepare("select count(*) as rows, count(data) as entities from entities where +slot between @from and @to")
        .get(range) as { rows: number; entities: number };
      return { sequence, ...counted, checksum: hash.digest("hex"), after };
    })
    .deferred();
}
