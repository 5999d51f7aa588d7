import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { build } from "esbuild";
import { parse } from "yaml";
import { parsedCopy } from "../server/http/openapi-document.js";

/*
 * The server's half of `npm run build` (tsc compiles the client and schema/ before it): the
 * server bundled by esbuild into a few files in dist/server/, with the files it reads beside
 * them. Loading ~1,000 modules one by one (resolving, reading and compiling each) was most of a
 * process's start-up; a bundle is read in a few files. Every output file lands flat in
 * dist/server/, which server/package-files.ts relies on.
 */

/**
 * Left to node_modules: better-sqlite3 loads its native addon from its own folder, and etcd3
 * reads its .proto files from its own (it loads only on a cluster node anyway).
 */
const EXTERNAL = ["better-sqlite3", "etcd3"];

const UI_FILES = ["index.html", "dashboard.js", "dashboard.css", "favicon.svg"];

const shared = {
  bundle: true,
  platform: "node",
  target: "node20",
  external: EXTERNAL,
  sourcemap: true,
  logLevel: "warning",
} as const;

// Hashed chunk names change with the code: an old build's chunks must not linger.
rmSync("dist/server", { recursive: true, force: true });
await build({
  ...shared,
  entryPoints: ["server/main.ts", "server/storage/inspection-thread.ts"],
  outdir: "dist/server",
  entryNames: "[name]",
  // Code that only some processes run (the command line, the cluster) stays in chunks of its own.
  splitting: true,
  format: "esm",
  // The CommonJS packages bundled into these ES modules still call require() for node's own modules.
  banner: {
    js: 'import { createRequire as __apostateRequire } from "node:module"; const require = __apostateRequire(import.meta.url);',
  },
});
/*
 * A worker's code, everything it runs in one CommonJS file: node 20 keeps V8's code cache only
 * for scripts, and server/worker-entry.ts runs this one with it (server/code-cache.ts).
 */
await build({
  ...shared,
  entryPoints: ["server/serve-worker.ts"],
  outfile: "dist/server/serve-worker.cjs",
  format: "cjs",
  define: { "import.meta.url": "__apostateModuleUrl" },
  banner: { js: 'const __apostateModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
});

mkdirSync("dist/server/ui", { recursive: true });
for (const file of UI_FILES) copyFileSync(`server/ui/${file}`, `dist/server/ui/${file}`);
const yaml = readFileSync("openapi.yaml", "utf8");
writeFileSync("dist/openapi.yaml", yaml);
writeFileSync("dist/openapi.json", parsedCopy(yaml, parse(yaml)));
