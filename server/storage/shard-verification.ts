import { statSync } from "node:fs";
import Database from "better-sqlite3";
import { DataDirectoryError } from "./storage-errors.js";
import { assertWalComplete, readPrefix } from "./wal-index.js";

/** What start-up learnt of a shard file it verified. */
export interface ShardFileState {
  /** The server that last had it open for writing closed it cleanly. */
  closedCleanly: boolean;
}

/*
 * The database header: https://www.sqlite.org/fileformat2.html#the_database_header. The page
 * count at offset 28 is trusted only when the "version-valid-for" number at 92 equals the
 * change counter at 24 (older writers did not keep it).
 */
const HEADER_BYTES = 100;
const MAGIC = "SQLite format 3\0";
const WAL_HEADER_BYTES = 32;

/*
 * What a read-only connection answers when the file needs SQLite's own crash recovery, which
 * only a connection that may write can do: a hot rollback journal (a crash in the middle of a
 * write outside WAL mode, such as the switch of a copy's journal mode at install) or a WAL index
 * that must be rebuilt while the `-shm` is read-only.
 */
const RECOVERY_REFUSED = new Set(["SQLITE_READONLY_ROLLBACK", "SQLITE_READONLY_RECOVERY"]);

function needsCrashRecovery(error: unknown): boolean {
  return error instanceof Database.SqliteError && RECOVERY_REFUSED.has(error.code);
}

/**
 * A read-only connection's failure in an operator's words: SQLite's, unless the file only needs
 * the crash recovery such a connection may not run, which SQLite calls "attempt to write a
 * readonly database".
 */
export function readFailureMessage(error: unknown): string {
  if (!needsCrashRecovery(error)) return (error as Error).message;
  return "a crash left it needing SQLite's crash recovery (a hot rollback journal), which a read-only check cannot run: apostate serve runs it at start-up";
}

/**
 * Verifies a shard file before anything opens it for writing, in a time that does not grow with
 * the file: what a crash or a careless copy can damage, never every page (that is `apostate
 * check`). A SIGKILL cannot corrupt a SQLite file; what can go wrong is outside SQLite: a WAL
 * deleted or cut short ({@link assertWalComplete}), a file truncated or its header overwritten.
 * Then the root page of every table is read, which finds a file whose structure was scribbled
 * over, and the shard's identity table must be there. Read-only throughout, except for the
 * recovery SQLite itself runs after a crash (rolling back a hot journal), which the shard's own
 * connection would run a moment later anyway: a damaged file is reported, never "repaired".
 *
 * @throws DataDirectoryError naming the file.
 * @example
 * const { closedCleanly } = verifyShardFile("/var/lib/apostate/shard-000.sqlite");
 */
export function verifyShardFile(file: string): ShardFileState {
  assertWalComplete(file);
  assertSizeMatchesHeader(file);
  return readShardFile(file, { mayRecover: true });
}

function readShardFile(file: string, { mayRecover }: { mayRecover: boolean }): ShardFileState {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw new DataDirectoryError(`cannot open shard file ${file}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const tables = db.prepare("select name from sqlite_master where type = 'table' and rootpage > 0").pluck().all() as string[];
    // An empty file (e.g. truncated to nothing) is a valid empty database; opening it for writing
    // would run the migrations into it, so it is refused here, before anything writes.
    if (!tables.includes("shard_state")) {
      throw new DataDirectoryError(`shard file ${file} is empty or not an apostate shard: it has no shard_state table`);
    }
    for (const table of tables) db.prepare(`select 1 from "${table.replaceAll('"', '""')}" limit 1`).get();
    const columns = db.prepare("select name from pragma_table_info('shard_state')").pluck().all() as string[];
    // A file from before the flag existed was last closed by a server that did not record it.
    const closedCleanly =
      columns.includes("clean_close") && db.prepare("select clean_close from shard_state").pluck().get() === 1;
    return { closedCleanly };
  } catch (error) {
    if (error instanceof DataDirectoryError) throw error;
    if (!(mayRecover && needsCrashRecovery(error))) {
      throw new DataDirectoryError(`shard file ${file} is corrupt: ${(error as Error).message}`, { cause: error });
    }
  } finally {
    db.close();
  }
  recoverAfterCrash(file);
  return readShardFile(file, { mayRecover: false });
}

/** SQLite recovers a file at the first read of a connection that may write; nothing else is written. */
function recoverAfterCrash(file: string): void {
  const db = new Database(file, { fileMustExist: true });
  try {
    db.pragma("schema_version");
  } catch (error) {
    throw new DataDirectoryError(`shard file ${file} needs SQLite's crash recovery, which failed: ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    db.close();
  }
}

/**
 * A file shorter than the pages its header counts was truncated. Only checked when the WAL
 * holds no frames: otherwise a checkpoint cut short may have written the new header before the
 * pages after it, which the WAL still holds and SQLite replays.
 */
function assertSizeMatchesHeader(file: string): void {
  const walBytes = statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0;
  if (walBytes > WAL_HEADER_BYTES) return;
  const { size } = statSync(file);
  // An empty file has no header; the identity check refuses it.
  if (size === 0) return;
  const header = readPrefix(file, HEADER_BYTES);
  if (header.length < HEADER_BYTES || header.toString("latin1", 0, MAGIC.length) !== MAGIC) {
    throw new DataDirectoryError(`shard file ${file} is corrupt: its header is not an SQLite database header`);
  }
  const rawPageSize = header.readUInt16BE(16);
  const pageSize = rawPageSize === 1 ? 65_536 : rawPageSize;
  if (header.readUInt32BE(92) !== header.readUInt32BE(24)) return;
  const pages = header.readUInt32BE(28);
  if (size < pages * pageSize) {
    throw new DataDirectoryError(
      `shard file ${file} is truncated: ${size} bytes, but its header counts ${pages} pages of ${pageSize} bytes (${pages * pageSize} bytes)`,
    );
  }
}
