import { sql, type Kysely } from "kysely";

/*
 * Replication, for a cluster with replicas. `followers`: the owner's list of the nodes its write
 * batches must reach before they are acknowledged (a JSON array of node ids, sorted), stamped by
 * the owner's node whenever the map changes it and read by every batch under the write lock, as
 * the epoch is. `synced`: on a follower's copy, 1 once it has applied a batch its owner shipped
 * from the write path, from which on it holds every write the owner acknowledged; a copy that is
 * only seeded (snapshot and tail) is 0 and cannot be promoted. Added only when missing.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a frozen migration must not depend on today's row types
export async function up(db: Kysely<any>): Promise<void> {
  const { rows } = await sql<{ name: string }>`select name from pragma_table_info('shard_state')`.execute(db);
  const present = new Set(rows.map((row) => row.name));
  if (!present.has("followers")) {
    await db.schema
      .alterTable("shard_state")
      .addColumn("followers", "text", (c) => c.notNull().defaultTo("[]"))
      .execute();
  }
  if (!present.has("synced")) {
    await db.schema
      .alterTable("shard_state")
      .addColumn("synced", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
  }
}
