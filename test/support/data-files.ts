import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import Database from "better-sqlite3";
import { cpSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ServerProcess } from "./server-process.js";

/** Every file of a directory with the SHA-256 of its bytes, to prove that nothing was touched. */
export function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((file) => [
        file,
        createHash("sha256")
          .update(readFileSync(join(dir, file)))
          .digest("hex"),
      ]),
  );
}

/** A copy of a data directory, so that each case damages its own. */
export function copyDirectory(from: string, to: string): string {
  cpSync(from, to, { recursive: true });
  return to;
}

/**
 * Starts a server that should refuse the data directory. A server that starts anyway is
 * stopped at once, so a missed detection fails fast instead of waiting for a timeout.
 */
export async function startupRefusal(dataDir: string): Promise<{ refused: boolean; output: string }> {
  try {
    const server = await ServerProcess.start({ dataDir, workers: 1 });
    await server.crash();
    return { refused: false, output: server.output.join("\n") };
  } catch (error) {
    return { refused: true, output: (error as Error).message };
  }
}

/** The change feed's indexes (see indexChangeFeed) a shard file has, by name. */
export function changeFeedIndexes(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare("select name from sqlite_master where name like '%_sequence' order by name").pluck().all() as string[];
  } finally {
    db.close();
  }
}

/**
 * Deletes every entity of `file` in a rollback-journal transaction, killed before it commits.
 * A one-page cache makes SQLite write changed pages into the file before the commit, which it
 * does only after syncing the journal: the journal is then hot (until a sync it does not count).
 */
export function crashMidWrite(file: string): void {
  const script = `
    const db = new (require("better-sqlite3"))(process.argv[1]);
    db.pragma("journal_mode = DELETE");
    db.pragma("cache_size = 1");
    db.exec("begin immediate; delete from entities");
    process.kill(process.pid, "SIGKILL");`;
  const { signal } = spawnSync(process.execPath, ["-e", script, file], { stdio: "inherit" });
  if (signal !== "SIGKILL") throw new Error(`the writer was meant to be killed, and ended with ${String(signal)}`);
}
