import { sql, type Kysely } from "kysely";

/*
 * A shard's fence, for a cluster: the epoch (the map revision at which the shard's owner last
 * changed; 0 = never fenced) and whether the shard is frozen while it moves. Both live in the
 * file, so a write checks them under SQLite's write lock, in its own transaction. Frozen once
 * released, like every migration. SQLite has no `add column if not exists`, so each column is
 * added only when it is missing.
 */
const COLUMNS = ["epoch", "frozen"] as const;

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
}
