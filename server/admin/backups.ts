import { randomBytes } from "node:crypto";
import { mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

/** The folder of a data directory that backups are written into. */
const BACKUP_FOLDER = "backups";

/** A finished backup, as `POST /admin/shards/{shard}/backup` answers it. */
export interface BackupInfo {
  shard: number;
  /** The file's name inside the data directory's `backups/` folder. */
  file: string;
  bytes: number;
  /** The shard's change sequence the copy holds. */
  sequence: number;
}

/** Copies a shard into `destination` and says which sequence the copy holds. */
export type ShardCopier = (destination: string) => Promise<{ sequence: number }>;

/**
 * Writes a backup of shard `shard` into `<dataDir>/backups/`. The copy is made under a
 * temporary name and renamed once complete, so a listed backup is never a partial one. Its
 * name is built here from the shard number, the sequence and the time, never from input, so
 * no request can choose where a file is written.
 *
 * @example
 * await writeBackup("/var/lib/apostate", 3, (file) => shard.backup(file))
 * // { shard: 3, file: "shard-003-seq000000000042-20261126T061502123Z.sqlite", bytes: 24576, sequence: 42 }
 */
export async function writeBackup(dataDir: string, shard: number, copy: ShardCopier): Promise<BackupInfo> {
  if (!Number.isInteger(shard) || shard < 0) throw new RangeError(`not a shard number: ${shard}`);
  const folder = join(dataDir, BACKUP_FOLDER);
  mkdirSync(folder, { recursive: true });
  const started = new Date();
  const partial = join(folder, `.partial-${shard}-${randomBytes(6).toString("hex")}.sqlite`);
  try {
    const { sequence } = await copy(partial);
    const file = backupFileName(shard, sequence, started);
    renameSync(partial, join(folder, file));
    return { shard, file, bytes: statSync(join(folder, file)).size, sequence };
  } finally {
    rmSync(partial, { force: true });
    rmSync(`${partial}-journal`, { force: true });
  }
}

function backupFileName(shard: number, sequence: number, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, "").replace(".", "");
  return `shard-${String(shard).padStart(3, "0")}-seq${String(sequence).padStart(12, "0")}-${stamp}.sqlite`;
}
