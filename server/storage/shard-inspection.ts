import { statSync } from "node:fs";
import Database from "better-sqlite3";
import type { components } from "../../client/generated/openapi.js";
import { readFailureMessage } from "./shard-verification.js";
import type { ShardStateRow } from "./tables.js";

/*
 * Operator queries on one shard file. They take the bare connection so that both a served
 * shard ({@link Shard}) and a read-only connection of the offline CLI can run them.
 */

/** A shard's figures, each read from the file itself (the admin API's ShardInfo, less placement). */
export type ShardStats = Omit<components["schemas"]["ShardInfo"], "shard" | "slots">;

/** One key a shard holds, as the admin API lists it. */
export type ShardKey = components["schemas"]["ShardKey"];

const MAX_INTEGRITY_MESSAGES = 100;

type Tallies = Pick<ShardStateRow, "entities" | "idempotency_records">;

/**
 * The figures of one shard, in one row read: the entity and record counts are the running
 * tallies that every write keeps in `shard_state`. A file from before the tallies (read by the
 * offline CLI; a server migrates it at start-up) is counted instead.
 */
export function readShardStats(db: Database.Database, file: string): ShardStats {
  const tallied = hasTallies(db);
  const read = db.transaction(() => {
    const state = db.prepare("select sequence, last_write_at from shard_state").get() as Pick<
      ShardStateRow,
      "sequence" | "last_write_at"
    >;
    return { state, tallies: tallied ? readTallies(db) : countTallies(db) };
  });
  const { state, tallies } = read.deferred();
  return {
    entities: tallies.entities,
    fileBytes: sizeOf(file),
    walBytes: sizeOf(`${file}-wal`),
    sequence: state.sequence,
    idempotencyRecords: tallies.idempotency_records,
    lastWriteAt: state.last_write_at,
  };
}

function hasTallies(db: Database.Database): boolean {
  return db.prepare("select 1 from pragma_table_info('shard_state') where name = 'entities'").get() !== undefined;
}

function readTallies(db: Database.Database): Tallies {
  return db.prepare("select entities, idempotency_records from shard_state").get() as Tallies;
}

/** What the tallies must equal: a count of every row. */
function countTallies(db: Database.Database): Tallies {
  return {
    entities: db.prepare("select count(*) from entities where data is not null").pluck().get() as number,
    idempotency_records: db.prepare("select count(*) from idempotency").pluck().get() as number,
  };
}

/** The tallies compared with a real count, in one snapshot; a message for each that differs. */
function checkTallies(db: Database.Database): string[] {
  if (!hasTallies(db)) return [];
  const { kept, counted } = db.transaction(() => ({ kept: readTallies(db), counted: countTallies(db) })).deferred();
  const messages: string[] = [];
  if (kept.entities !== counted.entities) {
    messages.push(`the entity tally is ${kept.entities}, but the shard holds ${counted.entities} live entities`);
  }
  if (kept.idempotency_records !== counted.idempotency_records) {
    messages.push(
      `the idempotency-record tally is ${kept.idempotency_records}, but the shard holds ${counted.idempotency_records} records`,
    );
  }
  return messages;
}

/** Up to `limit` live keys after `after` (exclusive), ordered by type, then id. */
export function listShardKeys(db: Database.Database, after: { type: string; id: string } | undefined, limit: number): ShardKey[] {
  return db
    .prepare(
      `select type, id, slot, version from entities
       where data is not null and (type, id) > (@type, @id)
       order by type, id limit @limit`,
    )
    .all({ type: after?.type ?? "", id: after?.id ?? "", limit }) as ShardKey[];
}

/**
 * SQLite's full integrity check, then the running tallies against a real count; returns the
 * complaints, none when the file is sound. A file too damaged to be read at all is reported the
 * same way rather than thrown.
 */
export function checkIntegrity(db: Database.Database): string[] {
  try {
    const rows = db.pragma(`integrity_check(${MAX_INTEGRITY_MESSAGES})`) as { integrity_check: string }[];
    const messages = rows.map((row) => row.integrity_check).filter((message) => message !== "ok");
    return messages.length > 0 ? messages : checkTallies(db);
  } catch (error) {
    return [readFailureMessage(error)];
  }
}

/**
 * Copies the shard into `destination` with SQLite's online backup API and returns the change
 * sequence the copy holds, read from the copy itself, so the two can never disagree.
 *
 * After the first step, the rest is copied in one step: a step holds a read snapshot, so a
 * write by another process cannot restart the copy (SQLite restarts a stepwise backup whenever
 * another connection changes the source between steps, which under load could go on forever).
 * The copy is switched out of WAL mode so that it is one self-contained file.
 */
export async function backupShardFile(db: Database.Database, destination: string): Promise<{ sequence: number }> {
  await db.backup(destination, { progress: ({ remainingPages }) => Math.max(remainingPages, 1) });
  const copy = new Database(destination);
  try {
    copy.pragma("journal_mode = DELETE");
    return { sequence: copy.prepare("select sequence from shard_state").pluck().get() as number };
  } finally {
    copy.close();
  }
}

function sizeOf(file: string): number {
  // The WAL comes and goes with checkpoints and closes; absent means empty.
  return statSync(file, { throwIfNoEntry: false })?.size ?? 0;
}
