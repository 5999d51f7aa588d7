import { sql, type Kysely } from "kysely";

/*
 * Running tallies of a shard's live entities and idempotency records, kept by every write in the
 * transaction that changes them, so the figures cost one row read instead of a count of every
 * row; and whether the shard was last closed cleanly, so start-up knows what it must check.
 * Frozen once released, like every migration. SQLite has no `add column if not exists`, so each
 * column is added only when it is missing, and the tallies are set from real counts.
 */
const COLUMNS = ["entities", "idempotency_records", "clean_close"] as const;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a frozen migration must not depend on today's row types
export async function up(db: Kysely<any>): Promise<void> {
  const { rows } = await sql<{ name: string }>`select name from pragma_table_info('shard_state')`.execute(db);
  const present = new Set(rows.map((row) => row.name));
  for (const column of COLUMNS) {
    if (!present.has(column)) {
      await db.schema
        .alterTable("shard_state")
        .addColumn(column, "integer", (c) => c.notNull().defaultTo(0))
        .execute();
    }
  }
  await sql`update shard_state set
    entities = (select count(*) from entities where data is not null),
    idempotency_records = (select count(*) from idempotency)`.execute(db);
}
