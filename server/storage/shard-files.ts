import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/*
 * Changes to the files of a data directory. rename(2) is atomic, but neither a file's bytes nor
 * the directory entry that names it survive power loss until they are fsynced.
 */

/** fsyncs a file or a directory by path. */
export function syncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Replaces `path` with `text` all at once: a reader (or a crash) sees the old file or the new one. */
export function replaceFile(path: string, text: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  const fd = openSync(temporary, "w");
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  syncPath(dirname(path));
}

/**
 * Deletes an SQLite database file with its companions. A WAL left beside a new file of the same
 * name would be replayed into it.
 */
export function removeShardFiles(file: string): void {
  for (const suffix of ["", "-wal", "-shm", "-journal"]) rmSync(`${file}${suffix}`, { force: true });
}
