import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { translateSqliteError } from "./storage-errors.js";

/** A long read of one shard file: SQLite's integrity check, or an online backup into `destination`. */
export type InspectionTask = { kind: "check"; file: string } | { kind: "backup"; file: string; destination: string };

interface InspectionResults {
  check: string[];
  backup: { sequence: number };
}

/** What the thread posts back. */
export type InspectionReply = { ok: true; result: unknown } | { ok: false; message: string; code?: string };

/**
 * The thread's entry: `.ts` when running from the sources; built, an ES module beside the bundle
 * this code is in (a worker's own bundle is CommonJS, `.cjs`).
 */
const ENTRY = new URL(`./inspection-thread${extname(fileURLToPath(import.meta.url)) === ".ts" ? ".ts" : ".js"}`, import.meta.url);

/**
 * Runs a task in a worker thread on a read-only connection of its own. An integrity check or a
 * backup reads the whole file (about a second per 60 MB); on the request thread it would stall
 * every request of that process for as long.
 *
 * @example
 * const messages = await inspectOffThread({ kind: "check", file: shard.file }); // [] when sound
 */
export function inspectOffThread<K extends InspectionTask["kind"]>(
  task: Extract<InspectionTask, { kind: K }>,
): Promise<InspectionResults[K]> {
  const worker = ENTRY.pathname.endsWith(".ts")
    ? // From the TypeScript sources (tests, `tsx`), the thread first registers tsx's loader, which
      // a worker thread does not inherit from `node --import tsx`.
      new Worker(`import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(ENTRY.href)}); })`, {
        eval: true,
        workerData: task,
      })
    : new Worker(ENTRY, { workerData: task });
  return new Promise((resolve, reject) => {
    worker.once("message", (reply: InspectionReply) => {
      if (reply.ok) resolve(reply.result as InspectionResults[K]);
      else reject(translateSqliteError(Object.assign(new Error(reply.message), { code: reply.code }), task.file));
    });
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`the inspection thread for ${task.file} exited with ${code}`)));
  });
}
