import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { Script } from "node:vm";

/*
 * V8's code cache for a CommonJS bundle: the bytecode V8 compiled for it, saved once and handed
 * back to V8 at the next start, so a process skips parsing and compiling the bundle. Node 20 has
 * no cache for modules (`module.enableCompileCache()` came in node 22.1), so the bundle is run
 * as a script through node:vm, which takes the cache.
 *
 * V8 checks a cache only against the source's length and its own version and flags, and in
 * release builds not against a checksum of its bytes: a cache for another bundle of the same
 * length, or a damaged one, could run. So the file carries a header naming the bundle's SHA-256,
 * node's and V8's versions and the SHA-256 of the cache's bytes, and anything that does not
 * match exactly is ignored (and replaced).
 */

/** What became of the cache when the bundle loaded. */
export type CodeCacheState =
  /** No cache asked for (`off`), or no file yet. */
  | "absent"
  /** Made for another bundle, another node or V8, or other V8 flags: ignored, replaced after start-up. */
  | "stale"
  /** Unreadable, truncated, or its bytes not those its header names: ignored, replaced. */
  | "damaged"
  | "used";

/** A bundle loaded through {@link loadBundle}. */
export interface LoadedBundle {
  exports: unknown;
  cache: CodeCacheState;
  /**
   * Writes the cache unless the one used is current; call once the process has done its start-up,
   * so that the functions start-up ran are in it, compiled. False when it could not be written
   * (a read-only install): the next start compiles again, nothing else changes.
   */
  saveCache(): boolean;
}

interface CacheHeader {
  bundle: string;
  node: string;
  v8: string;
  arch: string;
  data: string;
}

/** The header line is short; anything longer without a line end is not a cache of ours. */
const MAX_HEADER_BYTES = 1024;

/** Node's CommonJS wrapper, on the bundle's first line so that line numbers stay the bundle's. */
const WRAPPER_START = "(function (exports, require, module, __filename, __dirname) { ";
const WRAPPER_END = "\n});";

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

function expectedHeader(bundleSha256: string): Omit<CacheHeader, "data"> {
  return { bundle: bundleSha256, node: process.version, v8: process.versions.v8, arch: process.arch };
}

/** The cache's bytes when `file` holds a cache of this very bundle for this node; otherwise why not. */
function readCache(file: string, bundleSha256: string): Buffer | Exclude<CodeCacheState, "used"> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? "absent" : "damaged";
  }
  const lineEnd = bytes.subarray(0, MAX_HEADER_BYTES).indexOf(0x0a);
  if (lineEnd < 0) return "damaged";
  let header: Partial<CacheHeader>;
  try {
    header = JSON.parse(bytes.subarray(0, lineEnd).toString("utf8")) as Partial<CacheHeader>;
  } catch {
    return "damaged";
  }
  const expected = expectedHeader(bundleSha256);
  for (const [key, value] of Object.entries(expected)) if (header[key as keyof CacheHeader] !== value) return "stale";
  const data = bytes.subarray(lineEnd + 1);
  return header.data === sha256(data) ? data : "damaged";
}

/**
 * Loads the CommonJS bundle `file` as node would `require()` it, with V8's code cache kept in
 * `cacheDirectory` (undefined: no cache). A missing, stale or damaged cache costs only the
 * compiling it would have saved.
 *
 * @example
 * const bundle = loadBundle("/app/dist/server/serve-worker.cjs", "/app/dist/server");
 * await (bundle.exports as { runWorker(): Promise<void> }).runWorker();
 * bundle.saveCache();
 */
export function loadBundle(file: string, cacheDirectory: string | undefined): LoadedBundle {
  const source = readFileSync(file);
  const bundleSha256 = sha256(source);
  const cacheFile = cacheDirectory === undefined ? undefined : join(cacheDirectory, `${basename(file)}.v8-cache`);
  const cached = cacheFile === undefined ? "absent" : readCache(cacheFile, bundleSha256);
  const script = new Script(`${WRAPPER_START}${source.toString("utf8")}${WRAPPER_END}`, {
    filename: file,
    ...(typeof cached !== "string" && { cachedData: cached }),
  });
  // V8 still refuses a cache made under other flags (--max-old-space-size, --cpu-prof, …).
  const cache: CodeCacheState = typeof cached === "string" ? cached : script.cachedDataRejected ? "stale" : "used";
  const module = { exports: {} as unknown };
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  run.call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
  return {
    exports: module.exports,
    cache,
    saveCache() {
      if (cacheFile === undefined || cache === "used") return true;
      const data = script.createCachedData();
      const header: CacheHeader = { ...expectedHeader(bundleSha256), data: sha256(data) };
      // Written aside and renamed: a process reading it meanwhile sees the old file or the new one.
      const staging = `${cacheFile}.${process.pid}.tmp`;
      try {
        mkdirSync(cacheDirectory as string, { recursive: true });
        writeFileSync(staging, Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), data]));
        renameSync(staging, cacheFile);
        return true;
      } catch {
        rmSync(staging, { force: true });
        return false;
      }
    },
  };
}
