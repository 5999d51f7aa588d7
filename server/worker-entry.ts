import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { loadBundle } from "./code-cache.js";
import type { runWorker } from "./serve-worker.js";

/*
 * How a worker of `apostate serve` loads its code. Built, it is one CommonJS bundle beside this
 * module (dist/server/serve-worker.cjs, made by scripts/build-server.ts), run with V8's code
 * cache (code-cache.ts): compiling the worker's 3 MB of JavaScript was the largest part of its
 * start-up. From the TypeScript sources (tests, `tsx`), serve-worker.ts is imported as it is.
 */

/** Where the cache goes: beside the bundle, or `APOSTATE_CODE_CACHE` (a directory, or `off`). */
const CACHE_ENV = "APOSTATE_CODE_CACHE";

interface WorkerModule {
  runWorker: typeof runWorker;
}

function cacheDirectory(bundle: string): string | undefined {
  const setting = process.env[CACHE_ENV];
  if (setting === "off") return undefined;
  return setting || dirname(bundle);
}

/** Runs the worker; resolves once it listens. */
export async function startWorker(): Promise<void> {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith(".ts")) {
    // A specifier in a variable: the bundler must not pull the sources into the ES module build.
    const sources = "./serve-worker.js";
    return ((await import(sources)) as WorkerModule).runWorker();
  }
  const bundle = fileURLToPath(new URL("./serve-worker.cjs", import.meta.url));
  const loaded = loadBundle(bundle, cacheDirectory(bundle));
  await (loaded.exports as WorkerModule).runWorker(loaded.cache);
  loaded.saveCache();
}
