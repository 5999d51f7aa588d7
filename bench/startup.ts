import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { freePort } from "../server/cli/loopback-ports.js";
import { dataDirectoryBytes, preload } from "./preload.js";

/*
 * How long `apostate serve` takes to answer after a kill -9, on an empty data directory and on a
 * filled one: the median of N restarts, each timed from spawn to the first 200 of /healthz. The
 * compiled server is measured (run `npm run build` first; `npm run bench:startup` does). The
 * filled directory is built in the system's temporary folder and deleted afterwards. Each
 * restart follows one of the baseline, timed the same way: node itself, a primary that forks as
 * many workers, each answering on node:http and loading nothing else. On a busy machine the
 * ratio says more than the milliseconds.
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

async function healthy(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200;
  } catch {
    return false;
  }
}

/** A command line that serves /healthz on the given port. */
type Server = (port: number) => string[];

const apostate =
  (dataDir: string): Server =>
  (port) => ["dist/server/main.js", "serve", "--data-dir", dataDir, "--port", String(port), "--workers", String(WORKERS)];

const BASELINE_SCRIPT = `import cluster from "node:cluster";
import { createServer } from "node:http";
const [port, workers] = process.argv.slice(2).map(Number);
if (cluster.isPrimary) for (let i = 0; i < workers; i += 1) cluster.fork();
else createServer((_req, res) => res.end("ok")).listen(port, "127.0.0.1");
`;

/**
 * Starts a server, waits for /healthz, kills the whole process group with SIGKILL (after
 * `keepMs` more); milliseconds to healthy.
 */
async function timeRestart(server: Server, keepMs = 0): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, server(port), {
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, APOSTATE_LOG_LEVEL: "warn" },
  });
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
  await new Promise((resolve) => setTimeout(resolve, keepMs));
  process.kill(-(child.pid as number), "SIGKILL");
  await exited;
  return elapsed;
}

function summary(times: number[]): { median: number; min: number; max: number } {
  const sorted = [...times].sort((a, b) => a - b);
  const median = ((sorted[Math.floor((RUNS - 1) / 2)] as number) + (sorted[Math.ceil((RUNS - 1) / 2)] as number)) / 2;
  return { median, min: sorted[0] as number, max: sorted.at(-1) as number };
}

const describe = ({ median, min, max }: ReturnType<typeof summary>) =>
  `median ${median.toFixed(0)} ms (min ${min.toFixed(0)}, max ${max.toFixed(0)})`;

/** N restarts of apostate on `dataDir`, each after one of the baseline, so both meet the same load. */
async function report(label: string, dataDir: string, baselineScript: string): Promise<void> {
  // The first start initialises an empty directory (or migrates a new one); it is not a restart.
  // It runs a second longer, so that every process has started and written V8's code cache.
  await timeRestart(apostate(dataDir), 1_000);
  const baselineTimes: number[] = [];
  const times: number[] = [];
  for (let run = 0; run < RUNS; run += 1) {
    baselineTimes.push(await timeRestart((port) => [baselineScript, String(port), String(WORKERS)]));
    times.push(await timeRestart(apostate(dataDir)));
  }
  const baseline = summary(baselineTimes);
  const server = summary(times);
  const mb = (dataDirectoryBytes(dataDir) / 1024 / 1024).toFixed(0);
  console.log(
    `${label} (${mb} MB, ${WORKERS} workers): ${describe(server)} over ${RUNS} restarts after kill -9; ` +
      `baseline ${describe(baseline)}; ${(server.median / baseline.median).toFixed(2)} × the baseline`,
  );
}

const root = mkdtempSync(join(tmpdir(), "apostate-startup-"));
try {
  const baselineScript = join(root, "baseline.mjs");
  writeFileSync(baselineScript, BASELINE_SCRIPT);
  await report("empty", join(root, "empty"), baselineScript);
  if (SIZE_BYTES > 0) {
    // A sample tells how many entities fill the wanted size.
    const sample = await preload(join(root, "sample"), 5_000);
    const filled = join(root, "filled");
    const count = Math.ceil(SIZE_BYTES / sample.diskBytesPerEntity);
    const loaded = await preload(filled, count);
    console.log(`preloaded ${count} entities in ${loaded.seconds.toFixed(0)} s`);
    await report("filled", filled, baselineScript);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
