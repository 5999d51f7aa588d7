import type Database from "better-sqlite3";
import { perConnection } from "./per-connection.js";
import type { EntityRow, IdempotencyRow, ShardStateRow } from "./tables.js";

/**
 * One batch of a shard's change feed: what changed after sequence `after`, up to and including
 * sequence `upTo`, read in one snapshot. Every write stores its entity's whole row with the
 * write's own sequence (a delete leaves a tombstone), and an idempotency record never changes
 * once written, so applying every batch in order to a copy taken at sequence `s0`, starting
 * with `after = s0`, reproduces the source. A batch with no rows means the reader has caught
 * up: `upTo` is then the shard's sequence.
 */
export interface ShardChanges {
  after: number;
  upTo: number;
  /** Entity rows (tombstones included) with `after < sequence <= upTo`, by sequence. */
  entities: EntityRow[];
  /** Idempotency records with `after < sequence <= upTo`, by sequence. */
  idempotency: IdempotencyRow[];
  /** The shard was frozen when the batch was read: no write can follow it until it is thawed. */
  frozen: boolean;
}

/**
 * Indexes the sequence of entity rows and idempotency records, so each batch of the feed reads
 * only the rows it returns. A shard has these indexes only from the first batch read from it
 * (a move or split tailing it) until it is next opened as a cluster member's (dropUnusedIndexes),
 * because they cost every write dearly: a write moves its row's entry in the entity index, a
 * leaf page at random, and a one-row write transaction with them ran about 40% slower
 * (commitWrite's batches about 25%; 16-write batches of a 100,000-row table 29 against 50 µs
 * per write). Building them takes about 0.2 s per 100,000 rows; without them a batch still comes
 * right, by scanning the table (about 0.1 s per 500,000 rows).
 */
export function indexChangeFeed(db: Database.Database): void {
  db.exec(`create index if not exists entities_sequence on entities (sequence);
           create index if not exists idempotency_sequence on idempotency (sequence)`);
}

/** Drops the change feed's indexes (see indexChangeFeed) from a shard no move or split tails. */
export function dropChangeFeedIndexes(db: Database.Database): void {
  db.exec(`drop index if exists entities_sequence;
           drop index if exists idempotency_sequence`);
}

/**
 * The changes after `after`: at most `limit` entity rows and at most `limit` records. `upTo` is
 * the shard's sequence when neither reached the limit, else the last sequence that both lists
 * hold in full, so the next batch (`after = upTo`) misses nothing. Each write has a sequence of
 * its own, so no two rows of a table share one.
 */
export function readChanges(db: Database.Database, after: number, limit: number): ShardChanges {
  if (!Number.isSafeInteger(after) || after < 0) throw new RangeError(`after must be a sequence (0 or more), not ${after}`);
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, not ${limit}`);
  return db
    .transaction(() => {
      const state = db.prepare("select sequence, frozen from shard_state").get() as Pick<ShardStateRow, "sequence" | "frozen">;
      const entities = db
        .prepare("select * from entities where sequence > ? order by sequence limit ?")
        .all(after, limit) as EntityRow[];
      const idempotency = db
        .prepare("select * from idempotency where sequence > ? order by sequence limit ?")
        .all(after, limit) as IdempotencyRow[];
      const upTo = Math.min(state.sequence, lastSequenceIfFull(entities, limit), lastSequenceIfFull(idempotency, limit));
      return {
        after,
        upTo,
        entities: entities.filter((row) => row.sequence <= upTo),
        idempotency: idempotency.filter((row) => row.sequence <= upTo),
        frozen: state.frozen !== 0,
      };
    })
    .deferred();
}

function lastSequenceIfFull(rows: { sequence: number }[], limit: number): number {
  return rows.length < limit ? Infinity : (rows.at(-1) as { sequence: number }).sequence;
}

/**
 * Applies a batch to a copy in one immediate transaction: each entity row is stored as given
 * (version, timestamps and sequence kept) unless the copy already holds that row at the same or
 * a later sequence, records it does not have yet are added, the tallies are kept right and the
 * copy's sequence becomes at least `upTo`. Applying a batch again changes nothing.
 *
 * A batch that starts after the copy's sequence would leave a gap, and a row outside the copy's
 * slot range belongs to another shard: both are refused, before anything is written.
 */
export function applyChanges(db: Database.Database, changes: ShardChanges): void {
  const { selectState, select, upsert, insertRecord, saveState } = applyStatements(db);
  db.transaction(() => {
    const state = selectState.get() as Pick<ShardStateRow, "sequence" | "slot_from" | "slot_to">;
    if (changes.after > state.sequence) {
      throw new RangeError(`the changes start after sequence ${changes.after}, but the copy holds only up to ${state.sequence}`);
    }
    const stray = [...changes.entities, ...changes.idempotency].find(
      (row) => row.slot < state.slot_from || row.slot > state.slot_to,
    );
    if (stray) {
      throw new RangeError(
        `${stray.type}/${stray.id} is in slot ${stray.slot}, outside the copy's slots ${state.slot_from}-${state.slot_to}`,
      );
    }
    let live = 0;
    let lastWriteAt = "";
    for (const row of changes.entities) {
      const held = select.get(row.type, row.id) as Pick<EntityRow, "sequence" | "data"> | undefined;
      if (held && held.sequence >= row.sequence) continue;
      upsert.run(row);
      live += Number(row.data !== null) - Number(held !== undefined && held.data !== null);
      if (row.updated_at > lastWriteAt) lastWriteAt = row.updated_at;
    }
    let records = 0;
    for (const record of changes.idempotency) records += insertRecord.run(record).changes;
    saveState.run({ upTo: changes.upTo, live, records, lastWriteAt });
  }).immediate();
}

/*
 * Prepared once per connection rather than for each batch: a follower applies one per group
 * commit of its owner. The upsert leaves `slot` alone: a key's slot follows from the key, and
 * setting it rewrote the row's entry in the slot index, which halved the rate of batches of
 * updates (`npm run bench:storage`, a follower's batch of 9 random rows: 1,700 against 3,350 a
 * second, raw SQL 3,700).
 */
const applyStatements = perConnection(prepareApply);

function prepareApply(db: Database.Database) {
  return {
    selectState: db.prepare("select sequence, slot_from, slot_to from shard_state"),
    select: db.prepare("select sequence, data from entities where type = ? and id = ?"),
    upsert: db.prepare(
      `insert into entities (type, id, slot, version, data, created_at, updated_at, sequence)
       values (@type, @id, @slot, @version, @data, @created_at, @updated_at, @sequence)
       on conflict (type, id) do update set version = excluded.version, data = excluded.data,
         created_at = excluded.created_at, updated_at = excluded.updated_at, sequence = excluded.sequence`,
    ),
    insertRecord: db.prepare(
      `insert into idempotency (type, id, key, slot, sequence, fingerprint, kind, version, representation, created_at)
       values (@type, @id, @key, @slot, @sequence, @fingerprint, @kind, @version, @representation, @created_at)
       on conflict do nothing`,
    ),
    saveState: db.prepare(
      `update shard_state set sequence = max(sequence, @upTo), entities = entities + @live,
         idempotency_records = idempotency_records + @records,
         last_write_at = case when @lastWriteAt > coalesce(last_write_at, '') then @lastWriteAt else last_write_at end`,
    ),
  };
}
