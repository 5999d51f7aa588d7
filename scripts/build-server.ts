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
 * reads its .proto files from its own (it loads only on a cluster node anyway). undici (the
 * forwarder's, 1 MB) and yaml (read only when the build's parsed copy of openapi.yaml is
 * missing or stale) load only in some processes; in the bundle, every process would read and
 * hash them at each start (server/code-cache.ts).
 */
const EXTERNAL = ["better-sqlite3", "etcd3", "undici", "yaml"];

const UI_FILES = ["index.html", "dashboard.js", "dashboard.css", "favicon.svg"];

const shared = {
  bundle: true,
  platform: "node",
  target: "node20",
  external: EXTERNAL,
  sourcemap: true,
  logLevel: "warning",
} as const;

rmSync("dist/server", { recursive: true, force: true });
// The entry (server/entry.ts picks and loads a process's bundle) and the inspection thread's.
await build({
  ...shared,
  entryPoints: ["server/main.ts", "server/storage/inspection-thread.ts"],
  outdir: "dist/server",
  entryNames: "[name]",
  format: "esm",
});
/*
 * Each process's code in one CommonJS file, the command line's (with the primary of `apostate
 * serve`) and a worker's: node 20 keeps V8's code cache only for scripts, and server/entry.ts
 * runs these with it (server/code-cache.ts). What only some commands run (the cluster, the
 * offline admin) is in the file but starts only when required.
 */
for (const [entry, outfile] of [
  ["server/cli/program.ts", "dist/server/cli.cjs"],
  ["server/serve-worker.ts", "dist/server/serve-worker.cjs"],
]) {
  await build({
    ...shared,
    entryPoints: [entry as string],
    outfile,
    format: "cjs",
    // A script run by node:vm has no module loader: import() of a package left outside becomes require().
    supported: { "dynamic-import": false },
    define: { "import.meta.url": "__apostateModuleUrl" },
    banner: { js: 'const __apostateModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
  });
}

mkdirSync("dist/server/ui", { recursive: true });
for (const file of UI_FILES) copyFileSync(`server/ui/${file}`, `dist/server/ui/${file}`);
const yaml = readFileSync("openapi.yaml", "utf8");
writeFileSync("dist/openapi.yaml", yaml);
writeFileSync("dist/openapi.json", parsedCopy(yaml, parse(yaml)));
