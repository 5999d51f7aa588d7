import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { backupShardFile, checkIntegrity } from "./shard-inspection.js";
import type { InspectionReply, InspectionTask } from "./off-thread-inspection.js";

/*
 * The entry of a worker thread that runs one long inspection of a shard file on a connection of
 * its own, read-only, and posts the result back; see off-thread-inspection.ts.
 */
const task = workerData as InspectionTask;
const reply = (message: InspectionReply) => parentPort?.postMessage(message);

let db: Database.Database | undefined;
try {
  db = new Database(task.file, { readonly: true, fileMustExist: true });
  if (task.kind === "check") reply({ ok: true, result: checkIntegrity(db) });
  else reply({ ok: true, result: await backupShardFile(db, task.destination) });
} catch (error) {
  const { message, code } = error as Error & { code?: unknown };
  reply({ ok: false, message, ...(typeof code === "string" && { code }) });
} finally {
  db?.close();
}
