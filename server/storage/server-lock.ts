import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The data directory's note of the server that holds it. */
const SERVER_LOCK_FILE = "server.json";

/** Which process serves a data directory, and where. */
export interface ServerLock {
  pid: number;
  url: string;
  startedAt: string;
}

/*
 * SQLite's own locks keep any number of processes consistent, so this note is not what guards
 * the data: it tells the operator's CLI that a server holds the directory, and where to ask it.
 */

/** Records that this process serves `dataDir` at `url`. */
export function writeServerLock(dataDir: string, url: string): void {
  const lock: ServerLock = { pid: process.pid, url, startedAt: new Date().toISOString() };
  const staging = join(dataDir, `.${SERVER_LOCK_FILE}.${process.pid}`);
  writeFileSync(staging, `${JSON.stringify(lock)}\n`);
  renameSync(staging, join(dataDir, SERVER_LOCK_FILE));
}

/** Removes the note, unless another server has written its own since. */
export function removeServerLock(dataDir: string): void {
  if (readServerLock(dataDir)?.pid === process.pid) rmSync(join(dataDir, SERVER_LOCK_FILE), { force: true });
}

/** The server that holds `dataDir`, if its process is still alive (a crash leaves a stale note). */
export function liveServerLock(dataDir: string): ServerLock | undefined {
  const lock = readServerLock(dataDir);
  return lock && isAlive(lock.pid) ? lock : undefined;
}

function readServerLock(dataDir: string): ServerLock | undefined {
  try {
    const value = JSON.parse(readFileSync(join(dataDir, SERVER_LOCK_FILE), "utf8")) as Partial<ServerLock>;
    if (typeof value.pid === "number" && typeof value.url === "string" && typeof value.startedAt === "string") {
      return { pid: value.pid, url: value.url, startedAt: value.startedAt };
    }
    return undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
