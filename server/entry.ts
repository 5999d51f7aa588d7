import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { buildProgram } from "./cli/program.js";
import { loadBundle, type CodeCacheState } from "./code-cache.js";
import type { runWorker } from "./serve-worker.js";

/*
 * How each process of apostate loads its code. Built, the command line (and the primary of
 * `apostate serve`) and a worker are each one CommonJS bundle beside this module
 * (dist/server/cli.cjs and serve-worker.cjs, made by scripts/build-server.ts), run with V8's
 * code cache (code-cache.ts): compiling them was the largest part of a process's start-up. From
 * the TypeScript sources (tests, `tsx`), the modules are imported as they are.
 */

/** Where the cache goes: beside the bundles, or `APOSTATE_CODE_CACHE` (a directory, or `off`). */
const CACHE_ENV = "APOSTATE_CODE_CACHE";

const FROM_SOURCES = fileURLToPath(import.meta.url).endsWith(".ts");

interface Loaded<T> {
  module: T;
  codeCache: CodeCacheState | undefined;
  /** Writes the code cache if it was not used; call once the process has started. */
  saveCache(): void;
}

/** The bundle `bundle`, or from the sources the module `sources` (relative to this one). */
async function load<T>(bundle: string, sources: string): Promise<Loaded<T>> {
  if (FROM_SOURCES) return { module: (await import(sources)) as T, codeCache: undefined, saveCache: () => {} };
  const file = fileURLToPath(new URL(bundle, import.meta.url));
  const setting = process.env[CACHE_ENV];
  const loaded = loadBundle(file, setting === "off" ? undefined : setting || dirname(file));
  return { module: loaded.exports as T, codeCache: loaded.cache, saveCache: () => void loaded.saveCache() };
}

/*
 * The sources' specifiers are passed in variables: the bundler must not pull the modules into
 * the ES module build, which holds only this entry.
 */
const WORKER_SOURCES = "./serve-worker.js";
const CLI_SOURCES = "./cli/program.js";

/** A worker of `apostate serve`; resolves once it listens. */
export async function startWorker(): Promise<void> {
  const worker = await load<{ runWorker: typeof runWorker }>("./serve-worker.cjs", WORKER_SOURCES);
  await worker.module.runWorker(worker.codeCache);
  worker.saveCache();
}

/** The command line; `apostate serve` saves the code cache once its workers listen. */
export async function startCommandLine(): Promise<void> {
  const cli = await load<{ buildProgram: typeof buildProgram }>("./cli.cjs", CLI_SOURCES);
  await cli.module.buildProgram({ onServing: cli.saveCache }).parseAsync();
}
