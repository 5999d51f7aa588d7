import { sql, type Kysely } from "kysely";

/*
 * A shard's first schema. Migrations are frozen once released: they take Kysely<any> and never
 * import application code (hence `Kysely<any>`, not the current row types). SQLite DDL is not transactional under kysely's Migrator, so every
 * statement is written to be safe to re-run.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a frozen migration must not depend on today's row types
export async function up(db: Kysely<any>): Promise<void> {
  // One row per key ever written. A deleted entity stays as a tombstone (data NULL) so a
  // re-created entity continues its version and a stale ETag can never match again.
  await db.schema
    .createTable("entities")
    .ifNotExists()
    .addColumn("type", "text", (c) => c.notNull())
    .addColumn("id", "text", (c) => c.notNull())
    .addColumn("slot", "integer", (c) => c.notNull())
    .addColumn("version", "integer", (c) => c.notNull())
    .addColumn("data", "text")
    .addColumn("created_at", "text", (c) => c.notNull())
    .addColumn("updated_at", "text", (c) => c.notNull())
    .addColumn("sequence", "integer", (c) => c.notNull())
    .addPrimaryKeyConstraint("entities_pk", ["type", "id"])
    .modifyEnd(sql`without rowid`)
    .execute();
  await db.schema.createIndex("entities_slot").ifNotExists().on("entities").columns(["slot"]).execute();

  // Activities: the recorded outcome of each keyed mutation, written in the same transaction.
  await db.schema
    .createTable("idempotency")
    .ifNotExists()
    .addColumn("type", "text", (c) => c.notNull())
    .addColumn("id", "text", (c) => c.notNull())
    .addColumn("key", "text", (c) => c.notNull())
    .addColumn("fingerprint", "text", (c) => c.notNull())
    .addColumn("status", "integer", (c) => c.notNull())
    .addColumn("etag", "text")
    .addColumn("location", "text")
    .addColumn("body", "text")
    .addColumn("created_at", "integer", (c) => c.notNull())
    .addPrimaryKeyConstraint("idempotency_pk", ["type", "id", "key"])
    .execute();
  await db.schema.createIndex("idempotency_created_at").ifNotExists().on("idempotency").columns(["created_at"]).execute();

  // Exactly one row: which shard this file is (checked against the manifest at start-up),
  // its change sequence and its last write.
  await db.schema
    .createTable("shard_state")
    .ifNotExists()
    .addColumn("singleton", "integer", (c) => c.primaryKey().check(sql`singleton = 1`))
    .addColumn("shard", "integer", (c) => c.notNull())
    .addColumn("slot_from", "integer", (c) => c.notNull())
    .addColumn("slot_to", "integer", (c) => c.notNull())
    .addColumn("sequence", "integer", (c) => c.notNull())
    .addColumn("last_write_at", "text")
    .execute();
}
