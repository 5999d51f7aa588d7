import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { dataDirectoryBytes, preload } from "./preload.js";

/*
 * How long `apostate serve` takes to answer after a kill -9, on an empty data directory and on a
 * filled one: the median of N restarts, each timed from spawn to the first 200 of /healthz. The
 * compiled server is measured (run `npm run build` first; `npm run bench:startup` does). The
 * filled directory is built in the system's temporary folder and deleted afterwards.
 *
 *   npm run bench:startup -- --runs 8 --workers 2 --size-mb 1024
 */
const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "8" },
    workers: { type: "string", default: "2" },
    "size-mb": { type: "string", default: "1024" },
  },
});
const RUNS = Number(values.runs);
const WORKERS = Number(values.workers);
const SIZE_BYTES = Number(values["size-mb"]) * 1024 * 1024;
const POLL_MS = 5;

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

async function healthy(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200;
  } catch {
    return false;
  }
}

/** Starts the server, waits for /healthz, kills the whole process group with SIGKILL; milliseconds to healthy. */
async function timeRestart(dataDir: string): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(
    process.execPath,
    ["dist/server/main.js", "serve", "--data-dir", dataDir, "--port", String(port), "--workers", String(WORKERS)],
    { detached: true, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, APOSTATE_LOG_LEVEL: "warn" } },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, "exit");
  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));
  while (!(await healthy(port))) {
    if (exitedEarly) throw new Error(`the server exited before it was healthy:\n${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  const elapsed = performance.now() - started;
  process.kill(-(child.pid as number), "SIGKILL");
  await exited;
  return elapsed;
}

async function medianRestart(label: string, dataDir: string): Promise<void> {
  // The first start initialises an empty directory (or migrates a new one); it is not a restart.
  await timeRestart(dataDir);
  const times: number[] = [];
  for (let run = 0; run < RUNS; run += 1) times.push(await timeRestart(dataDir));
  times.sort((a, b) => a - b);
  const median = ((times[Math.floor((RUNS - 1) / 2)] as number) + (times[Math.ceil((RUNS - 1) / 2)] as number)) / 2;
  const mb = (dataDirectoryBytes(dataDir) / 1024 / 1024).toFixed(0);
  console.log(
    `${label} (${mb} MB, ${WORKERS} workers): median ${median.toFixed(0)} ms over ${RUNS} restarts after kill -9 ` +
      `(min ${times[0]?.toFixed(0)}, max ${times.at(-1)?.toFixed(0)})`,
  );
}

const root = mkdtempSync(join(tmpdir(), "apostate-startup-"));
try {
  await medianRestart("empty", join(root, "empty"));
  if (SIZE_BYTES > 0) {
    // A sample tells how many entities fill the wanted size.
    const sample = await preload(join(root, "sample"), 5_000);
    const filled = join(root, "filled");
    const count = Math.ceil(SIZE_BYTES / sample.diskBytesPerEntity);
    const loaded = await preload(filled, count);
    console.log(`preloaded ${count} entities in ${loaded.seconds.toFixed(0)} s`);
    await medianRestart("filled", filled);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
