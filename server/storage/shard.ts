import { accessSync, constants } from "node:fs";
import Database from "better-sqlite3";
import {
  DummyDriver,
  Kysely,
  Migrator,
  SqliteAdapter,
  SqliteDialect,
  SqliteIntrospector,
  SqliteQueryCompiler,
  sql,
  type Compilable,
  type RawBuilder,
} from "kysely";
import { migrations } from "../../schema/migrations/index.js";
import { slotOf } from "../../schema/placement.js";
import { FileSync } from "./file-sync.js";
import { inspectOffThread } from "./off-thread-inspection.js";
import { applyChanges, dropChangeFeedIndexes, indexChangeFeed, readChanges, type ShardChanges } from "./shard-changes.js";
import { applyReplica, readReplicaState, type ReplicaAck } from "./shard-replication.js";
import { digestShard, type ShardDigest } from "./shard-digest.js";
import { fenceOf, readFence, writeFence, type ShardFence } from "./shard-fence.js";
import { removeShardFiles } from "./shard-files.js";
import { rewriteIdentity } from "./shard-identity.js";
import { listShardKeys, readShardStats, type ShardKey, type ShardStats } from "./shard-inspection.js";
import { DataDirectoryError, ShardNotHereError, translateSqliteError, WalSyncError } from "./storage-errors.js";
import type { EntityRow, IdempotencyRow, ListedEntityRow, ShardDatabase, ShardStateRow, WriteKind } from "./tables.js";
import { WriteQueue, type BatchHooks } from "./write-queue.js";

export type Durability = "process" | "power";

export interface ShardPlacement {
  shard: number;
  slots: { from: number; to: number };
}

export type SlotRange = ShardPlacement["slots"];

/**
 * A cluster's check that this node may write to the shard: it throws (ShardFrozenError, or an
 * error of the caller's own) to refuse. It runs once per batch of the request path's writes,
 * after `BEGIN IMMEDIATE`, with the fence read in that same transaction, so nothing can change
 * the fence between the check and the commit. A refusal rolls the whole batch back and every
 * write in it rejects with the guard's error.
 */
export type WriteGuard = (placement: ShardPlacement, fence: ShardFence) => void;

/**
 * A committed batch of the request path's writes on a shard with followers: the changes (entity
 * rows and idempotency records it wrote, with the sequence range from the shard's sequence
 * before the batch to its last write's) that every follower must apply, with the epoch and the
 * followers the file held when the batch took the write lock.
 */
export interface ReplicaBatch {
  shard: number;
  epoch: number;
  followers: string[];
  changes: ShardChanges;
}

/**
 * Ships a batch to its followers; the batch's writes are acknowledged once it resolves, and
 * fail with its error if it rejects (the writes stay committed here: the client retries them
 * with their `Idempotency-Key`).
 */
export type BatchShipper = (batch: ReplicaBatch) => Promise<void>;

export interface ShardOptions {
  durability: Durability;
  /** How long a writer waits for another process's lock before the request fails with 503. */
  busyTimeoutMs: number;
  /** A cluster's write guard; a single node has none, and its writes read no fence. */
  guard?: WriteGuard | undefined;
  /** A cluster's shipper of the guarded batches of a shard with followers. */
  ship?: BatchShipper | undefined;
  /**
   * Under `power` durability, called when an fsync of the WAL fails, before any write of the
   * committed batch is answered. `apostate serve` stops the server there (PostgreSQL does the
   * same since 2018): the writes are committed, so a 5xx would be untrue, and later fsyncs cannot
   * be trusted. Without it the batch's writes fail with the WalSyncError.
   */
  onWalSyncFailure?: ((error: WalSyncError) => void) | undefined;
}

/** One page of a type's live entities, ordered by id in byte order. */
export interface ListRange {
  type: string;
  /** Exclusive lower bound; `""` for the first page. */
  after: string;
  prefix: string;
  limit: number;
}

/*
 * Ids only hold characters below U+007F, so every id that starts with `prefix` sorts before
 * `prefix + "\x7f"`: a prefix query becomes a range scan on the primary key.
 */
const PREFIX_UPPER_BOUND = "\x7f";

/** A named parameter that better-sqlite3 binds from an object: `@name`. */
function param<T>(name: string): RawBuilder<T> {
  return sql.raw<T>(`@${name}`);
}

/**
 * The request path's statements as SQL text, built by kysely once per process: the text is the
 * same for every shard, and building it anew for each shard's connection was a noticeable part of
 * a start-up. Each shard prepares the text on its own connections.
 */
let requestPathSqlText: ReturnType<typeof buildRequestPathSql> | undefined;

function requestPathSql() {
  requestPathSqlText ??= buildRequestPathSql();
  return requestPathSqlText;
}

function buildRequestPathSql() {
  // Only the SQLite dialect's compiler: the text is compiled here and run by better-sqlite3.
  const q = new Kysely<ShardDatabase>({
    dialect: {
      createAdapter: () => new SqliteAdapter(),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => new SqliteIntrospector(db),
      createQueryCompiler: () => new SqliteQueryCompiler(),
    },
  });
  const text = (query: Compilable) => {
    const { sql: compiled, parameters } = query.compile();
    // Values must arrive as named parameters at run time, never baked in at compile time.
    if (parameters.length > 0) throw new Error(`statement has positional parameters: ${compiled}`);
    return compiled;
  };
  return {
    selectEntity: text(
      q.selectFrom("entities").selectAll().where("type", "=", param<string>("type")).where("id", "=", param<string>("id")),
    ),
    upsertEntity: text(
      q
        .insertInto("entities")
        .values({
          type: param<string>("type"),
          id: param<string>("id"),
          slot: param<number>("slot"),
          version: param<number>("version"),
          data: param<string | null>("data"),
          created_at: param<string>("created_at"),
          updated_at: param<string>("updated_at"),
          sequence: param<number>("sequence"),
        })
        .onConflict((oc) =>
          oc.columns(["type", "id"]).doUpdateSet((eb) => ({
            version: eb.ref("excluded.version"),
            data: eb.ref("excluded.data"),
            created_at: eb.ref("excluded.created_at"),
            updated_at: eb.ref("excluded.updated_at"),
            sequence: eb.ref("excluded.sequence"),
          })),
        ),
    ),
    listEntities: text(
      q
        .selectFrom("entities")
        .select(["type", "id", "version", "data", "created_at", "updated_at"])
        .where("type", "=", param<string>("type"))
        .where("id", ">", param<string>("after"))
        .where("id", ">=", param<string>("prefix"))
        .where("id", "<", param<string>("upper"))
        .where("data", "is not", null)
        .orderBy("id")
        .limit(param<number>("limit")),
    ),
    selectIdempotency: text(
      q
        .selectFrom("idempotency")
        .selectAll()
        .where("type", "=", param<string>("type"))
        .where("id", "=", param<string>("id"))
        .where("key", "=", param<string>("key")),
    ),
    insertIdempotency: text(
      q.insertInto("idempotency").values({
        type: param<string>("type"),
        id: param<string>("id"),
        key: param<string>("key"),
        slot: param<number>("slot"),
        sequence: param<number>("sequence"),
        fingerprint: param<string>("fingerprint"),
        kind: param<WriteKind>("kind"),
        version: param<number | null>("version"),
        representation: param<string | null>("representation"),
        created_at: param<number>("created_at"),
      }),
    ),
    nextSequence: text(
      q
        .updateTable("shard_state")
        .set({ sequence: sql<number>`sequence + 1`, last_write_at: param<string>("now") })
        .returning("sequence"),
    ),
    saveSequence: text(
      q.updateTable("shard_state").set({ sequence: param<number>("sequence"), last_write_at: param<string>("now") }),
    ),
    adjustTallies: text(
      q.updateTable("shard_state").set({
        entities: sql<number>`entities + ${param<number>("entities")}`,
        idempotency_records: sql<number>`idempotency_records + ${param<number>("records")}`,
      }),
    ),
    purgeIdempotency: text(
      q
        .deleteFrom("idempotency")
        .where((eb) =>
          eb(
            eb.refTuple("type", "id", "key"),
            "in",
            q
              .selectFrom("idempotency")
              .select(["type", "id", "key"])
              .where("created_at", "<", param<number>("before"))
              .limit(param<number>("limit"))
              .$asTuple("type", "id", "key"),
          ),
        ),
    ),
    selectState: text(q.selectFrom("shard_state").selectAll()),
    markOpen: text(
      q
        .updateTable("shard_state")
        .set({ clean_close: sql.lit(0) })
        .where("clean_close", "!=", sql.lit(0)),
    ),
    markClean: text(q.updateTable("shard_state").set({ clean_close: sql.lit(1) })),
  };
}

/**
 * One SQLite file holding a contiguous slot range. Every statement on the request path is built
 * by kysely once per process and prepared once, when the shard opens; a request only binds values.
 *
 * Writes go through {@link Shard.commitWrite} (or the synchronous {@link Shard.write}): a
 * `BEGIN IMMEDIATE` transaction that takes the file's write lock up front, so two processes
 * never both read-then-write the same row.
 */
export class Shard {
  private readonly statements;
  private readonly writeTransaction;
  private readonly writes: WriteQueue<ShardTransaction>;
  /** Under `power` durability, the fsync of the WAL that acknowledges each commit. */
  private readonly walSync: FileSync | undefined;
  private current: ShardPlacement;
  private guard: WriteGuard | undefined;
  private readonly ship: BatchShipper | undefined;
  /** The fence and sequence the batch being committed read under the write lock, when guarded. */
  private batchFence: { fence: ShardFence; sequence: number } | undefined;
  /** Whether the last guarded batch found followers to ship to. */
  private hasFollowers = false;

  private constructor(
    placement: ShardPlacement,
    readonly file: string,
    private readonly db: Database.Database,
    private readonly writer: Database.Database,
    options: ShardOptions,
  ) {
    this.current = placementOf(placement);
    this.guard = options.guard;
    this.ship = options.ship;
    const prepared = <K extends string>(texts: Readonly<Record<K, string>>) =>
      Object.fromEntries(Object.entries<string>(texts).map(([name, text]) => [name, db.prepare(text)])) as Record<
        K,
        Database.Statement
      >;
    this.statements = prepared(requestPathSql());
    // A write checks its slot against the range in memory, which the guard has found equal to the file's.
    const held = () => this.current.slots;
    this.transaction = transactionOn(this.statements, held);
    const transaction = this.transaction;
    this.writeTransaction = db.transaction((fn: (tx: ShardTransaction) => unknown) => {
      transaction.begin();
      const result = fn(transaction);
      transaction.end();
      return result;
    });
    const onWriter = (statement: Database.Statement) => writer.prepare(statement.source);
    const walSync = options.durability === "power" ? new FileSync(`${file}-wal`) : undefined;
    this.walSync = walSync;
    const queued = transactionOn(
      {
        selectEntity: onWriter(this.statements.selectEntity),
        selectIdempotency: onWriter(this.statements.selectIdempotency),
        nextSequence: onWriter(this.statements.nextSequence),
        saveSequence: onWriter(this.statements.saveSequence),
        upsertEntity: onWriter(this.statements.upsertEntity),
        insertIdempotency: onWriter(this.statements.insertIdempotency),
        adjustTallies: onWriter(this.statements.adjustTallies),
      },
      held,
    );
    const selectFence = writer.prepare("select slot_from, slot_to, epoch, frozen, followers, sequence from shard_state");
    this.writes = new WriteQueue<ShardTransaction>(writer, queued, {
      hooks: {
        begin: () => {
          queued.begin();
          this.checkGuard(selectFence);
        },
        end: () => queued.end(),
        savepoint: () => queued.savepoint(),
        rolledBack: () => queued.rolledBack(),
      },
      afterCommit: () => {
        const batch = this.replicaBatch(queued.captured());
        const durable = walSync?.sync().catch((error: unknown) => {
          const failure = new WalSyncError(`the fsync of ${this.file}-wal failed: ${String(error)}`, { cause: error });
          options.onWalSyncFailure?.(failure);
          throw failure;
        });
        const replicated = batch && this.ship?.(batch);
        if (!replicated) return durable;
        return durable ? Promise.all([durable, replicated]).then(() => undefined) : replicated;
      },
      busyTimeoutMs: options.busyTimeoutMs,
      translate: (error) => translateSqliteError(error, this.file),
    });
  }

  /**
   * Opens (and, when `create`, first initialises) a shard file, applies pending migrations and
   * checks that the file is the shard the manifest says it is.
   */
  static async open(
    file: string,
    placement: ShardPlacement,
    options: ShardOptions & {
      create: boolean;
      /**
       * A cluster member's shard: the change feed's indexes a finished move or split left are
       * dropped (see indexChangeFeed), and a file whose range holds `placement`'s is narrowed to
       * it (a reshape that recorded the new range in the manifest and stopped before the file);
       * otherwise the range must match.
       */
      member?: boolean;
    },
  ): Promise<Shard> {
    const db = openDatabase(file, { create: options.create });
    let writer: Database.Database | undefined;
    try {
      db.pragma("journal_mode = WAL");
      db.pragma(`synchronous = ${options.durability === "power" ? "FULL" : "NORMAL"}`);
      db.pragma(`busy_timeout = ${options.busyTimeoutMs}`);
      configureConnection(db);
      await migrate(db, file);
      if (options.create) {
        db.prepare("insert into shard_state (singleton, shard, slot_from, slot_to, sequence) values (1, ?, ?, ?, 0)").run(
          placement.shard,
          placement.slots.from,
          placement.slots.to,
        );
      }
      writer = openWriter(file);
      const shard = new Shard(placement, file, db, writer, options);
      if (options.member) {
        dropChangeFeedIndexes(db);
        shard.finishNarrowing();
      }
      shard.assertIdentity();
      // Until a clean close sets it again, the file counts as one a crash may have left behind.
      shard.statements.markOpen.run();
      return shard;
    } catch (error) {
      writer?.close();
      db.close();
      throw error;
    }
  }

  /** Opens a shard file as the shard it says it is (a copy being filled, outside any manifest). */
  static async openFile(file: string, options: ShardOptions): Promise<Shard> {
    return Shard.open(file, readIdentity(file), { ...options, create: false });
  }

  /** The shard this object serves: its number and slot range. */
  get placement(): ShardPlacement {
    return this.current;
  }

  readEntity(type: string, id: string): EntityRow | undefined {
    return this.run(() => {
      const row = this.statements.selectEntity.get({ type, id }) as EntityRow | undefined;
      // A miss is an answer only while the file still holds the key's slot: another process of
      // the node may have narrowed it (a split) after this read was routed here.
      if (!row) {
        const { slot_from: from, slot_to: to } = this.statements.selectState.get() as ShardStateRow;
        assertHeld({ from, to }, type, id, slotOf(type, id));
      }
      return row;
    });
  }

  /**
   * Throws ShardNotHereError when another process of the node has narrowed the file (a split)
   * since this object took its range. A narrowing is one transaction, so reads that ran before
   * a check that passes saw every row of the range: a list checks once its reads are done, as
   * the moved half may be in a shard this process does not list yet.
   */
  assertRangeCurrent(): void {
    this.run(() => this.assertFileRange(this.statements.selectState.get() as ShardStateRow));
  }

  private assertFileRange(state: Pick<ShardStateRow, "slot_from" | "slot_to">): void {
    const { slots } = this.current;
    if (state.slot_from !== slots.from || state.slot_to !== slots.to) {
      throw new ShardNotHereError(
        `${this.file} now holds slots ${state.slot_from}-${state.slot_to}, not ${slots.from}-${slots.to}: this process has not reloaded yet`,
      );
    }
  }

  /** A committed idempotency record, read outside any write transaction. */
  readIdempotency(type: string, id: string, key: string): IdempotencyRow | undefined {
    return this.run(() => this.statements.selectIdempotency.get({ type, id, key }) as IdempotencyRow | undefined);
  }

  /**
   * The range's rows one at a time, so a caller that merges shards reads only the rows it uses.
   * The connection is busy until the iterator is finished or `return()`ed.
   */
  *iterateEntities(range: ListRange): Generator<ListedEntityRow, void, undefined> {
    try {
      yield* this.statements.listEntities.iterate({
        type: range.type,
        after: range.after,
        prefix: range.prefix,
        upper: range.prefix + PREFIX_UPPER_BOUND,
        limit: range.limit,
      }) as IterableIterator<ListedEntityRow>;
    } catch (error) {
      throw translateSqliteError(error, this.file);
    }
  }

  /**
   * Runs `fn` in one immediate transaction: everything it writes commits together or not at
   * all. `fn` must be synchronous: the transaction may not stay open across event-loop ticks.
   */
  write<T>(fn: (tx: ShardTransaction) => T): T {
    return this.run(() => this.writeTransaction.immediate(fn as (tx: ShardTransaction) => unknown) as T);
  }

  /**
   * Runs `fn` in a write transaction and resolves once that transaction has committed. The
   * writes that arrive in one event-loop turn share one transaction (and, under `power`
   * durability, one fsync), each in a savepoint of its own; see {@link WriteQueue}.
   */
  commitWrite<T>(fn: (tx: ShardTransaction) => T): Promise<T> {
    return this.writes.enqueue(fn);
  }

  state(): ShardStateRow {
    return this.run(() => this.statements.selectState.get() as ShardStateRow);
  }

  /** The fence as committed. */
  fence(): ShardFence {
    return this.run(() => readFence(this.db));
  }

  /**
   * Changes the fence under the write lock (an immediate transaction) and returns it after the
   * change. The epoch can only grow (RangeError otherwise).
   *
   * @example
   * shard.setFence({ frozen: true }); // every guarded write now refuses until { frozen: false }
   */
  setFence(change: Partial<ShardFence>): ShardFence {
    return this.run(() => writeFence(this.db, change));
  }

  /** Sets or clears the write guard that every later batch of request-path writes calls. */
  setGuard(guard: WriteGuard | undefined): void {
    this.guard = guard;
  }

  /**
   * Whether the shard's writes wait for followers (as of its last batch): an idempotent replay is
   * then answered through the write queue, whose batch reaches the followers first, so no client
   * is answered from a record its followers may not hold yet.
   */
  get replicated(): boolean {
    return this.hasFollowers;
  }

  /**
   * Applies a batch its owner shipped, in one immediate transaction, unless the batch's epoch is
   * older than the file's (its sender has been replaced) or it starts after the copy's sequence
   * (a gap: the owner sends the changes from the sequence the answer names). See applyReplica.
   */
  applyReplica(epoch: number, changes: ShardChanges): ReplicaAck {
    return this.run(() => applyReplica(this.db, epoch, changes));
  }

  /** The copy's sequence, epoch and whether it is in sync with its owner (a follower's figures). */
  replicaState(): ReplicaAck {
    return this.run(() => readReplicaState(this.db));
  }

  /**
   * The change feed: what changed after sequence `after`, at most `limit` rows of each kind, in
   * one snapshot; see {@link ShardChanges}. The first call indexes the feed (see indexChangeFeed).
   *
   * @example
   * let batch = source.changesAfter(s0, 500); // s0: the sequence the copy was taken at
   * copy.applyChanges(batch);
   * while (batch.entities.length + batch.idempotency.length > 0) {
   *   batch = source.changesAfter(batch.upTo, 500);
   *   copy.applyChanges(batch);
   * }
   */
  changesAfter(after: number, limit: number, { indexed = true }: { indexed?: boolean } = {}): ShardChanges {
    return this.run(() => {
      // A follower's rare gap is read by a scan: the indexes would cost every later write.
      if (indexed) indexChangeFeed(this.db);
      return readChanges(this.db, after, limit);
    });
  }

  /**
   * Drops the change feed's indexes (see indexChangeFeed) once nothing tails the shard any more:
   * they cost every write. A later {@link changesAfter} builds them again.
   */
  dropChangeFeedIndexes(): void {
    this.run(() => dropChangeFeedIndexes(this.db));
  }

  /** Applies a batch of another copy's change feed, in one immediate transaction; idempotent. */
  applyChanges(changes: ShardChanges): void {
    this.run(() => applyChanges(this.db, changes));
  }

  /**
   * The digest of the entity rows in `slots` (the shard's own range by default), in one
   * snapshot; with `after`, its checksum covers only the rows written after that sequence.
   */
  digest(slots: SlotRange = this.current.slots, after?: number): ShardDigest {
    return this.run(() => digestShard(this.db, slots, after));
  }

  /**
   * A consistent copy of the shard in `destination` (replaced, with any companion files), made
   * with SQLite's online backup on a thread of its own; resolves to the sequence the copy holds.
   */
  snapshot(destination: string): Promise<{ sequence: number }> {
    removeShardFiles(destination);
    return inspectOffThread({ kind: "backup", file: this.file, destination });
  }

  /**
   * Makes the file the shard `placement` names, whose slots must lie within this one's: rows
   * outside them are deleted (see rewriteIdentity), and the fence is set when given.
   */
  reidentify(placement: ShardPlacement, fence?: ShardFence): void {
    if (!isWithin(placement.slots, this.current.slots)) {
      throw new RangeError(
        `slots ${placement.slots.from}-${placement.slots.to} are not within ${this.file}'s slots ${this.current.slots.from}-${this.current.slots.to}`,
      );
    }
    this.run(() => rewriteIdentity(this.db, placement, fence));
    this.current = placementOf(placement);
  }

  /** Deletes at most `limit` idempotency records created before `before` (Unix ms). */
  purgeIdempotency(before: number, limit: number): number {
    return this.write(() => {
      const deleted = this.statements.purgeIdempotency.run({ before, limit }).changes;
      tallyIdempotencyRecords(this.statements, -deleted);
      return deleted;
    });
  }

  /**
   * Records that the shard is being closed cleanly: call it once no other process writes to the
   * shard any more, just before the last checkpoint and {@link Shard.close}.
   */
  markClosedCleanly(): void {
    this.run(() => this.statements.markClean.run());
  }

  /** The shard's figures for operators, read from the file in one snapshot. */
  stats(): ShardStats {
    return this.run(() => readShardStats(this.db, this.file));
  }

  /** Live keys after `after`, ordered by type then id (the admin key listing). */
  listKeys(after: { type: string; id: string } | undefined, limit: number): ShardKey[] {
    return this.run(() => listShardKeys(this.db, after, limit));
  }

  /** Open, not read-only, and the file still writable (readiness). */
  isWritable(): boolean {
    if (!this.db.open || this.db.readonly) return false;
    try {
      accessSync(this.file, constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Copies the WAL back into the database file. `PASSIVE` never waits for other connections;
   * `TRUNCATE` waits for them (busy timeout) and then empties the WAL file.
   */
  checkpoint(mode: "PASSIVE" | "TRUNCATE"): void {
    this.run(() => this.db.pragma(`wal_checkpoint(${mode})`));
  }

  /**
   * Copies the whole WAL into the file and fsyncs both, before anything is served under `power`
   * durability: a server stopped by a failed fsync of the WAL (see WalSyncError) can have left
   * commits that only the page cache holds, and a later fsync of the WAL would not write them.
   * An I/O error, or another process holding the WAL, stops it with a DataDirectoryError.
   */
  makeWalDurable(): void {
    let result: unknown;
    try {
      result = this.db.pragma("wal_checkpoint(TRUNCATE)");
    } catch (error) {
      throw new DataDirectoryError(`${this.file}: its WAL could not be copied into the file and synced: ${String(error)}`, {
        cause: error,
      });
    }
    const [{ busy }] = result as [{ busy: number }];
    if (busy !== 0) throw new DataDirectoryError(`${this.file}: another process holds its WAL, so it could not be synced`);
  }

  close(): void {
    // Nothing waits on the descriptor any more; a failure to close it has no one to tell.
    this.walSync?.close().catch(() => undefined);
    this.writer.close();
    this.db.close();
  }

  private readonly transaction: ShardTransaction & BatchHooks & BatchCapture;

  private run<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw translateSqliteError(error, this.file);
    }
  }

  private checkGuard(selectFence: Database.Statement): void {
    this.batchFence = undefined;
    const guard = this.guard;
    if (!guard) return;
    const state = selectFence.get() as Pick<
      ShardStateRow,
      "slot_from" | "slot_to" | "epoch" | "frozen" | "followers" | "sequence"
    >;
    // Another process of the node narrowed the shard: a write routed by the old range could
    // land in slots the shard no longer holds.
    this.assertFileRange(state);
    const fence = fenceOf(state);
    guard(this.current, fence);
    this.batchFence = { fence, sequence: state.sequence };
    this.hasFollowers = fence.followers.length > 0;
  }

  /** The batch just committed, for its followers; undefined when it has none to reach. */
  private replicaBatch(captured: Pick<ShardChanges, "entities" | "idempotency" | "upTo">): ReplicaBatch | undefined {
    const read = this.batchFence;
    this.batchFence = undefined;
    if (!read || read.fence.followers.length === 0 || !this.ship) return undefined;
    return {
      shard: this.current.shard,
      epoch: read.fence.epoch,
      followers: read.fence.followers,
      changes: { ...captured, after: read.sequence, upTo: Math.max(read.sequence, captured.upTo), frozen: false },
    };
  }

  private finishNarrowing(): void {
    const state = this.statements.selectState.get() as ShardStateRow | undefined;
    const { shard, slots } = this.current;
    if (!state || state.shard !== shard || (state.slot_from === slots.from && state.slot_to === slots.to)) return;
    if (isWithin(slots, { from: state.slot_from, to: state.slot_to })) rewriteIdentity(this.db, this.current);
  }

  private assertIdentity(): void {
    const state = this.statements.selectState.get() as ShardStateRow | undefined;
    const { shard, slots } = this.placement;
    if (!state || state.shard !== shard || state.slot_from !== slots.from || state.slot_to !== slots.to) {
      throw new DataDirectoryError(
        `${this.file} does not match the manifest: it holds ${
          state ? `shard ${state.shard}, slots ${state.slot_from}-${state.slot_to}` : "no shard identity"
        }, the manifest expects shard ${shard}, slots ${slots.from}-${slots.to}`,
      );
    }
  }
}

/** Just the placement, whatever else the object it came in carries (a manifest entry's file). */
function placementOf({ shard, slots }: ShardPlacement): ShardPlacement {
  return { shard, slots: { from: slots.from, to: slots.to } };
}

/** Whether `inner` is a valid slot range inside `outer`. */
export function isWithin(inner: SlotRange, outer: SlotRange): boolean {
  return (
    Number.isInteger(inner.from) &&
    Number.isInteger(inner.to) &&
    outer.from <= inner.from &&
    inner.from <= inner.to &&
    inner.to <= outer.to
  );
}

/** The shard a file says it is, read before it is opened for writing. */
function readIdentity(file: string): ShardPlacement {
  const db = openDatabase(file, { create: false });
  try {
    const state = db.prepare("select shard, slot_from, slot_to from shard_state").get() as
      Pick<ShardStateRow, "shard" | "slot_from" | "slot_to"> | undefined;
    if (!state) throw new DataDirectoryError(`${file} holds no shard identity`);
    return { shard: state.shard, slots: { from: state.slot_from, to: state.slot_to } };
  } catch (error) {
    if (error instanceof DataDirectoryError) throw error;
    throw new DataDirectoryError(`${file} is not an apostate shard: ${(error as Error).message}`, { cause: error });
  } finally {
    db.close();
  }
}

/** What a write transaction may do; only {@link Shard.write} and {@link Shard.commitWrite} hand one out. */
export interface ShardTransaction {
  readEntity(type: string, id: string): EntityRow | undefined;
  readIdempotency(type: string, id: string, key: string): IdempotencyRow | undefined;
  /**
   * Advances the shard's change sequence and returns the new value. The transaction writes the
   * sequence (and `now` as the last write's time) to shard_state once, before it commits. A
   * write rolled back alone after taking a number leaves a gap: the sequence only ever grows.
   */
  nextSequence(now: string): number;
  /** Writes `row` over `previous` (the row {@link ShardTransaction.readEntity} found), keeping the live-entity tally. */
  saveEntity(row: EntityRow, previous: EntityRow | undefined): void;
  recordIdempotency(row: IdempotencyRow): void;
}

/** What a committed transaction wrote: its rows and its last sequence (0 when it wrote none). */
interface BatchCapture {
  captured(): Pick<ShardChanges, "entities" | "idempotency" | "upTo">;
  savepoint(): void;
  rolledBack(): void;
}

type TransactionStatements = Record<
  "selectEntity" | "selectIdempotency" | "nextSequence" | "saveSequence" | "upsertEntity" | "insertIdempotency" | "adjustTallies",
  Database.Statement
>;

const isLive = (row: EntityRow | undefined) => row !== undefined && row.data !== null;

/*
 * Every change to the number of idempotency records goes through here, in the transaction that
 * makes it, so the tally read by the figures stays equal to a count of the table.
 */
function tallyIdempotencyRecords(statements: Pick<TransactionStatements, "adjustTallies">, change: number): void {
  if (change !== 0) statements.adjustTallies.run({ entities: 0, records: change });
}

/*
 * A request was routed to its shard by the slot index; by the time its transaction runs,
 * another process of the node may have narrowed the shard (a split), and this process's reload
 * may have caught up in between, so the batch's guard finds the ranges equal. Every key a
 * transaction touches is therefore checked here: a key the shard no longer holds was deleted
 * from it by the narrowing, so a read would answer "absent" and a write would start the entity
 * afresh in a file that no longer serves it, where the write would be lost.
 */
function assertHeld(slots: SlotRange, type: string, id: string, slot: number): void {
  if (!isWithin({ from: slot, to: slot }, slots)) {
    throw new ShardNotHereError(
      `${type}/${id} (slot ${slot}) is not in this shard any more: it was narrowed after the request was routed`,
    );
  }
}

/*
 * A transaction's first write advances the shard's sequence in shard_state (under the write
 * lock, so from where every other process left it); the writes after it count on in memory,
 * and the transaction stores where they got to once, before COMMIT. A group commit of n writes
 * costs two UPDATEs instead of n; a lone write, one, as before.
 */
function transactionOn(statements: TransactionStatements, held: () => SlotRange): ShardTransaction & BatchHooks & BatchCapture {
  let stored: number | undefined;
  let sequence = 0;
  let lastWriteAt = "";
  // The rows the transaction wrote, for its followers; a write rolled back to its savepoint takes its rows back.
  let entities: EntityRow[] = [];
  let idempotency: IdempotencyRow[] = [];
  let mark = { entities: 0, idempotency: 0 };
  return {
    begin: () => {
      stored = undefined;
      entities = [];
      idempotency = [];
    },
    end: () => {
      if (stored !== undefined && sequence !== stored) statements.saveSequence.run({ sequence, now: lastWriteAt });
    },
    savepoint: () => {
      mark = { entities: entities.length, idempotency: idempotency.length };
    },
    rolledBack: () => {
      entities.length = mark.entities;
      idempotency.length = mark.idempotency;
    },
    captured: () => ({ entities, idempotency, upTo: stored === undefined ? 0 : sequence }),
    readEntity: (type, id) => {
      assertHeld(held(), type, id, slotOf(type, id));
      return statements.selectEntity.get({ type, id }) as EntityRow | undefined;
    },
    readIdempotency: (type, id, key) => {
      assertHeld(held(), type, id, slotOf(type, id));
      return statements.selectIdempotency.get({ type, id, key }) as IdempotencyRow | undefined;
    },
    nextSequence: (now) => {
      lastWriteAt = now;
      if (stored !== undefined) return (sequence += 1);
      stored = (statements.nextSequence.get({ now }) as { sequence: number }).sequence;
      sequence = stored;
      return sequence;
    },
    saveEntity: (row, previous) => {
      assertHeld(held(), row.type, row.id, row.slot);
      statements.upsertEntity.run(row);
      entities.push(row);
      const change = Number(isLive(row)) - Number(isLive(previous));
      if (change !== 0) statements.adjustTallies.run({ entities: change, records: 0 });
    },
    recordIdempotency: (row) => {
      assertHeld(held(), row.type, row.id, row.slot);
      statements.insertIdempotency.run(row);
      idempotency.push(row);
      tallyIdempotencyRecords(statements, 1);
    },
  };
}

/*
 * The connection that commits the request path's writes (see WriteQueue). Its busy timeout is
 * zero: SQLite's busy handler sleeps with the whole event loop stopped, so a write that finds
 * the shard locked by another worker is retried on a timer instead. The main connection keeps
 * the configured wait for reads, purges, checkpoints and backups.
 */
function openWriter(file: string): Database.Database {
  const writer = new Database(file, { fileMustExist: true });
  configureConnection(writer);
  /*
   * The request path's commits do not sync: under `power` durability the WAL is fsynced after
   * each COMMIT on libuv's thread pool (FileSync) and the writes are acknowledged after that,
   * the guarantee of synchronous=FULL without stopping the event loop for the fsync.
   */
  writer.pragma("synchronous = NORMAL");
  writer.pragma("busy_timeout = 0");
  return writer;
}

/*
 * better-sqlite3 builds SQLite with a 16 MB page cache per connection, and a worker holds two
 * connections per shard: up to 256 MB of a worker's memory for pages the OS's page cache holds
 * anyway. The cache pays for itself on the B-tree's interior pages, which every lookup reads
 * and which fit in a few hundred KB; a leaf it misses is a read from the OS's cache. In WAL mode
 * a connection also drops its whole cache whenever another connection has committed, so under
 * writes a large cache mostly fills to be thrown away.
 */
const PAGE_CACHE_KIB = 1024;

/** The settings both of a shard's connections share. */
function configureConnection(db: Database.Database): void {
  db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
}

function openDatabase(file: string, { create }: { create: boolean }): Database.Database {
  try {
    return new Database(file, { fileMustExist: !create });
  } catch (error) {
    throw new DataDirectoryError(`cannot open shard file ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** Whether every migration is recorded as applied: then a start, and every worker's, skips the Migrator. */
function isMigrated(db: Database.Database): boolean {
  const hasTable =
    db.prepare("select 1 from sqlite_master where type = 'table' and name = 'kysely_migration'").get() !== undefined;
  if (!hasTable) return false;
  const applied = new Set(db.prepare("select name from kysely_migration").pluck().all() as string[]);
  return Object.keys(migrations).every((name) => applied.has(name));
}

async function migrate(db: Database.Database, file: string): Promise<void> {
  if (isMigrated(db)) return;
  const kysely = new Kysely<unknown>({ dialect: new SqliteDialect({ database: db }) });
  const migrator = new Migrator({ db: kysely, provider: { getMigrations: async () => migrations } });
  const { error } = await migrator.migrateToLatest();
  if (error) {
    throw new DataDirectoryError(`cannot migrate shard file ${file}: ${(error as Error).message}`, { cause: error });
  }
}
