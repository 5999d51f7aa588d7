import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import Database from "better-sqlite3";
import { writeBackup } from "../admin/backups.js";
import { shardInfo } from "../admin/shard-admin.js";
import { MANIFEST_FILE, parseManifest, type Manifest } from "../storage/manifest.js";
import { backupShardFile, checkIntegrity, readShardStats } from "../storage/shard-inspection.js";
import { readFailureMessage } from "../storage/shard-verification.js";
import { EXIT_CODES } from "./exit-codes.js";
import { OperatorError, type OperatorAdmin } from "./operator-admin.js";

/**
 * A data directory that no server holds, opened read-only: nothing is created, migrated or
 * repaired, so the CLI can inspect a stopped store, or a damaged copy of one, without
 * changing its data (SQLite may leave empty `-wal`/`-shm` companions beside a file it read).
 * Backups are the only thing written, into its `backups/` folder.
 */
export function offlineAdmin(dataDir: string): OperatorAdmin {
  const root = resolve(dataDir);
  const manifestPath = join(root, MANIFEST_FILE);
  if (!existsSync(manifestPath))
    throw new OperatorError(`${root} is not an apostate data directory: no ${MANIFEST_FILE}`, EXIT_CODES.usage);
  let manifest: Manifest;
  try {
    manifest = parseManifest(readFileSync(manifestPath, "utf8"), manifestPath);
  } catch (error) {
    throw new OperatorError((error as Error).message, EXIT_CODES.damaged);
  }
  const open = new Map<number, Database.Database>();
  const entry = (shard: number) => {
    const found = manifest.shards.find((entry) => entry.shard === shard);
    if (!found)
      throw new OperatorError(`there is no shard ${shard}; ${root} has shards 0-${manifest.shards.length - 1}`, EXIT_CODES.usage);
    return found;
  };
  const database = (shard: number) => {
    const file = join(root, entry(shard).file);
    let db = open.get(shard);
    if (!db) {
      try {
        db = new Database(file, { readonly: true, fileMustExist: true });
      } catch (error) {
        throw new OperatorError(`cannot open ${file}: ${(error as Error).message}`, EXIT_CODES.damaged);
      }
      open.set(shard, db);
    }
    return { db, file };
  };
  return {
    source: root,
    shardNumbers: async () => manifest.shards.map((placement) => placement.shard),
    shards: async () =>
      manifest.shards.map((placement) => {
        const { db, file } = database(placement.shard);
        try {
          return shardInfo(placement, readShardStats(db, file));
        } catch (error) {
          throw new OperatorError(`cannot read ${file}: ${readFailureMessage(error)} (try apostate check)`, EXIT_CODES.damaged);
        }
      }),
    check: async (shard) => {
      entry(shard);
      let messages: string[];
      try {
        messages = checkIntegrity(database(shard).db);
      } catch (error) {
        // A file that cannot even be opened is the most damaged of all.
        messages = [(error as Error).message];
      }
      return { shard, ok: messages.length === 0, messages };
    },
    backup: async (shard) => {
      const { db } = database(shard);
      return writeBackup(root, shard, (destination) => backupShardFile(db, destination));
    },
    close: () => {
      for (const db of open.values()) db.close();
    },
  };
}
