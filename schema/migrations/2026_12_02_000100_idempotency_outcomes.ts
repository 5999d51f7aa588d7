import { sql, type Kysely } from "kysely";

/*
 * The idempotency record, leaner and ready to move with its entity: keyed by (type, id, key) in
 * a WITHOUT ROWID table (one B-tree fewer than a rowid table with a unique key), holding what
 * the write did (kind, version, representation) instead of an HTTP answer, whose status, ETag and
 * Location follow from those. Each record carries its entity's slot and the shard change
 * sequence of its write, so records can be moved by slot range and tailed by sequence.
 *
 * Kysely's Migrator does not wrap SQLite migrations in a transaction, so this one takes the
 * write lock itself: the table is rebuilt all at once or not at all, and a run that finds it
 * rebuilt already (another process, or a crash before the Migrator noted it) does nothing.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a frozen migration must not depend on today's row types
export async function up(db: Kysely<any>): Promise<void> {
  await sql`begin immediate`.execute(db);
  try {
    const { rows } = await sql<{ name: string }>`select name from pragma_table_info('idempotency')`.execute(db);
    if (rows.some((column) => column.name === "status")) await rebuild(db);
    await sql`commit`.execute(db);
  } catch (error) {
    await sql`rollback`.execute(db);
    throw error;
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- as above
async function rebuild(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("idempotency_next")
    .addColumn("type", "text", (c) => c.notNull())
    .addColumn("id", "text", (c) => c.notNull())
    .addColumn("key", "text", (c) => c.notNull())
    .addColumn("slot", "integer", (c) => c.notNull())
    .addColumn("sequence", "integer", (c) => c.notNull())
    .addColumn("fingerprint", "text", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull().check(sql`kind in ('created', 'updated', 'deleted')`))
    .addColumn("version", "integer")
    .addColumn("representation", "text")
    .addColumn("created_at", "integer", (c) => c.notNull())
    .addPrimaryKeyConstraint("idempotency_pk", ["type", "id", "key"])
    // A delete has no version to tag and no representation to send; anything else has both.
    .addCheckConstraint(
      "idempotency_outcome",
      sql`(kind = 'deleted') = (version is null) and (kind = 'deleted') = (representation is null)`,
    )
    .modifyEnd(sql`without rowid`)
    .execute();

  /*
   * Old records answered 201, 200 or 204 with an ETag `"<version>"`; their Location follows from
   * the key. Every record's write also wrote its entity's row (a delete leaves a tombstone), so
   * the join finds each record's slot; were one missing, the NOT NULL on slot would stop the
   * migration rather than lose the record. The sequence of an old record's write is not known:
   * 0 places it before every change a tail could start after.
   */
  await sql`
    insert into idempotency_next
      (type, id, key, slot, sequence, fingerprint, kind, version, representation, created_at)
    select r.type, r.id, r.key, e.slot, 0, r.fingerprint,
      case r.status when 201 then 'created' when 200 then 'updated' else 'deleted' end,
      case when r.status = 204 then null else cast(trim(r.etag, '"') as integer) end,
      case when r.status = 204 then null else r.body end,
      r.created_at
    from idempotency r left join entities e on e.type = r.type and e.id = r.id
  `.execute(db);
  await db.schema.dropTable("idempotency").execute();
  await db.schema.alterTable("idempotency_next").renameTo("idempotency").execute();
  // The retention purge deletes the oldest records first. In a WITHOUT ROWID table the index
  // holds the key beside created_at, so the purge finds what to delete from the index alone.
  await db.schema.createIndex("idempotency_created_at").on("idempotency").columns(["created_at"]).execute();
}
