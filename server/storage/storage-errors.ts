/** The data directory cannot be served as it is; the message names the file and what is wrong. */
export class DataDirectoryError extends Error {}

/** A shard stayed locked by another process beyond its wait: the request may be retried. */
export class ShardBusyError extends Error {}

/** The disk is full: writes fail cleanly until space returns. */
export class StorageFullError extends Error {}

/**
 * Under `power` durability, an fsync of a shard's WAL failed after its batch committed: the
 * batch's writes are visible but may not be on disk, and a later fsync of the same file can
 * report success without them (Linux reports a failed writeback once), so nothing more may be
 * acknowledged on its word. `apostate serve` stops on it (see ShardOptions.onWalSyncFailure).
 */
export class WalSyncError extends Error {}

/**
 * A write reached a shard that is frozen while it moves. Storage never throws it itself: a
 * cluster's write guard does (see WriteGuard). The write may be retried shortly.
 */
export class ShardFrozenError extends Error {}

/**
 * No shard of this node holds the slot, or the shard's slot range changed under this process
 * (another process of the node reshaped it and this one has not reloaded yet). The request may
 * be retried shortly, when the routing has caught up.
 */
export class ShardNotHereError extends Error {}

/**
 * Turns SQLite's own failures into the storage layer's, naming the shard, so the HTTP layer can
 * answer 503 for conditions that pass and 500 for the rest.
 */
export function translateSqliteError(error: unknown, shardFile: string): unknown {
  const code = sqliteCode(error);
  if (code === undefined) return error;
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return new ShardBusyError(`${shardFile} is busy`, { cause: error });
  }
  if (code === "SQLITE_FULL") {
    return new StorageFullError(`${shardFile}: the disk is full`, { cause: error });
  }
  return error;
}

export function sqliteCode(error: unknown): string | undefined {
  if (error instanceof Error && "code" in error && typeof error.code === "string" && error.code.startsWith("SQLITE_")) {
    return error.code;
  }
  return undefined;
}
