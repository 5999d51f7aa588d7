/**
 * `npm run bench`: apostate under load next to the limits of its own stack, measured in one run.
 *
 * @example
 * npm run bench -- --entities 100000 --connections 64 --duration 10 --million
 * npm run bench -- --cluster   # three nodes on etcd next to a single node: see cluster-bench.ts
 * npm run bench -- --cluster --replicas 2   # the same nodes without and with replicas: see replication-bench.ts
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { entityJson } from "../server/entities/entity.js";
import { BenchServer } from "./bench-server.js";
import { clusterBench } from "./cluster-bench.js";
import { replicationBench } from "./replication-bench.js";
import { measure, warmUp, type BenchRequest, type LoadOptions, type Measurement } from "./load.js";
import { preload, type PreloadResult } from "./preload.js";
import { profileText, type TimeWindow } from "./profile-summary.js";
import { formatTable, type Row } from "./report.js";
import {
  ENTITY_TYPE,
  entityData,
  entityId,
  entityPath,
  getRequests,
  JSON_HEADERS,
  putRequests,
  uniformIndex,
  zipfIndex,
} from "./workload.js";

const { values: args } = parseArgs({
  options: {
    entities: { type: "string", default: "100000" },
    connections: { type: "string", default: "64" },
    duration: { type: "string", default: "10" },
    warmup: { type: "string", default: "2" },
    workers: { type: "string", default: "2" },
    million: { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    only: { type: "string" },
    cluster: { type: "boolean", default: false },
    replicas: { type: "string", default: "1" },
  },
});

const ENTITIES = positive("entities");
const WORKERS = positive("workers");
const LOAD: LoadOptions = {
  connections: positive("connections"),
  seconds: positive("duration"),
  warmupSeconds: Number(args.warmup),
};
const SMALL_ENTITIES = 10_000;
const LARGE_ENTITIES = 1_000_000;
const REPLAY_KEYS = 1_000;
/** `--only get,put` runs just those scenarios (and what they are compared with), for profiling. */
const ONLY = args.only?.split(",");
const RESULTS_DIR = fileURLToPath(new URL("results/", import.meta.url));
const RUN_ID = new Date().toISOString().replaceAll(":", "-");

function positive(name: "entities" | "workers" | "connections" | "duration"): number {
  const value = Number(args[name]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
}

function selected(name: string): boolean {
  return ONLY === undefined || ONLY.includes(name);
}

function patchRequests(count: number): () => BenchRequest {
  const pick = uniformIndex(count);
  const headers = { "Content-Type": "application/merge-patch+json" };
  return () => ({ method: "PATCH", path: entityPath(pick()), headers, body: `{"balance":${Math.floor(Math.random() * 1e6)}}` });
}

const INC_BODY = JSON.stringify({ do: [{ op: "inc", path: "/balance", value: 1 }] });

function opsRequests(count: number): () => BenchRequest {
  const pick = uniformIndex(count);
  const run = Date.now().toString(36);
  let sequence = 0;
  return () => ({
    method: "POST",
    path: `${entityPath(pick())}/ops`,
    headers: { ...JSON_HEADERS, "Idempotency-Key": `${run}-${(sequence += 1)}` },
    body: INC_BODY,
  });
}

/** The keyed `ops` request that the replay scenario repeats for entity `index`. */
function replayRequest(index: number): BenchRequest {
  return {
    method: "POST",
    path: `${entityPath(index)}/ops`,
    headers: { ...JSON_HEADERS, "Idempotency-Key": `replay-${index}` },
    body: INC_BODY,
  };
}

function mixedRequests(count: number): () => BenchRequest {
  const get = getRequests(uniformIndex(count));
  const put = putRequests(uniformIndex(count));
  return () => (Math.random() < 0.8 ? get() : put());
}

async function send(url: string, request: BenchRequest): Promise<void> {
  const response = await fetch(url + request.path, {
    method: request.method,
    ...(request.headers && { headers: request.headers }),
    ...(request.body !== undefined && { body: request.body }),
  });
  if (!response.ok) throw new Error(`${request.method} ${request.path}: ${response.status} ${await response.text()}`);
  await response.arrayBuffer();
}

/** Sends `request` on a connection of its own, so that a cluster hands it to its next worker. */
function sendOnNewConnection(url: string, request: BenchRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url + request.path,
      { method: request.method, headers: request.headers ?? {}, agent: false },
      (res) => {
        res.resume();
        res.once("end", () =>
          res.statusCode !== undefined && res.statusCode < 300
            ? resolve()
            : reject(new Error(`${request.method} ${request.path}: ${res.statusCode}`)),
        );
      },
    );
    req.once("error", reject);
    req.end(request.body);
  });
}

interface Scenario {
  name: string;
  label: string;
  requests: () => BenchRequest;
  /** Minimum req/s as a share of the express baseline, when the issue sets one. */
  target?: number;
  /** Minimum req/s as a share of the limit baseline, when the issue sets one. */
  limitTarget?: number;
}

interface Outcome extends Measurement {
  name: string;
  label: string;
  target?: number;
  limitTarget?: number;
  /** The express baseline, measured again just before and just after this scenario (their mean). */
  paired?: Measurement;
  /** The limit baseline under the scenario's own requests, measured just before and after it (their mean). */
  pairedLimit?: Measurement;
}

const outcomes: Outcome[] = [];

/** When each server's scenarios were measured, on the monotonic clock V8's CPU profiles use. */
type MeasuredWindow = TimeWindow & { cpuMicrosPerRequest: number | null };
const measured = new Map<BenchServer, MeasuredWindow[]>();
const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

/*
 * On a shared machine the load of other processes drifts within a run, so each scenario is
 * compared with the baselines measured right before and right after it (they keep running,
 * idle, on ports of their own), not with figures taken minutes earlier: express answering a
 * fixed JSON, and the limit server answering the scenario's own requests.
 */
let pairedBaselines: { express: BenchServer; expressRequests: () => BenchRequest; limit: BenchServer } | undefined;
const PAIR: LoadOptions = { connections: LOAD.connections, seconds: Math.max(2, Math.ceil(LOAD.seconds / 4)), warmupSeconds: 0 };

async function run(server: BenchServer, scenarios: Scenario[]): Promise<void> {
  for (const scenario of scenarios) {
    if (!selected(scenario.name)) continue;
    process.stderr.write(`  ${scenario.label} …`);
    const baselines = pairedBaselines;
    // Warmed first, so that a server that has just started (its workers still compiling and
    // warming up) does not slow the baselines measured next to it. The limit server is warmed
    // with the scenario's requests at the same time: a warm-up measures nothing.
    await Promise.all([
      warmUp(server.url, scenario.requests, LOAD),
      baselines && warmUp(baselines.limit.url, scenario.requests, LOAD),
    ]);
    const onBaseline = async (baseline: BenchServer | undefined, requests: () => BenchRequest) =>
      baseline && (await measure(baseline.url, requests, PAIR, () => baseline.workerCpuSeconds()));
    const limitBefore = await onBaseline(baselines?.limit, scenario.requests);
    const expressBefore = await onBaseline(baselines?.express, baselines?.expressRequests ?? scenario.requests);
    const from = monotonicMicros();
    const measurement = await measure(server.url, scenario.requests, { ...LOAD, warmupSeconds: 0 }, () =>
      server.workerCpuSeconds(),
    );
    measured.set(server, [
      ...(measured.get(server) ?? []),
      { from, to: monotonicMicros(), cpuMicrosPerRequest: measurement.cpuMicrosPerRequest },
    ]);
    const expressAfter = await onBaseline(baselines?.express, baselines?.expressRequests ?? scenario.requests);
    const limitAfter = await onBaseline(baselines?.limit, scenario.requests);
    const paired = expressBefore && expressAfter && meanOf(expressBefore, expressAfter);
    const pairedLimit = limitBefore && limitAfter && meanOf(limitBefore, limitAfter);
    const statuses = Object.entries(measurement.statuses).map(([status, count]) => `${status}: ${count}`);
    const beforeAndAfter = (name: string, before?: Measurement, after?: Measurement) =>
      before && after
        ? `; ${name} before and after: ${Math.round(before.requestsPerSecond)}, ${Math.round(after.requestsPerSecond)} req/s`
        : "";
    process.stderr.write(
      ` ${Math.round(measurement.requestsPerSecond)} req/s (${statuses.join(", ")}` +
        `${beforeAndAfter("express", expressBefore, expressAfter)}${beforeAndAfter("limit", limitBefore, limitAfter)})\n`,
    );
    if (pairedLimit && pairedLimit.errors > 0) {
      throw new Error(`the limit server failed ${pairedLimit.errors} requests of ${scenario.name}: ${server.log}`);
    }
    outcomes.push({
      name: scenario.name,
      label: scenario.label,
      ...measurement,
      ...(scenario.target && { target: scenario.target }),
      ...(scenario.limitTarget && { limitTarget: scenario.limitTarget }),
      ...(paired && { paired }),
      ...(pairedLimit && { pairedLimit }),
    });
  }
}

/** The mean of two measurements of one server (the baseline before and after a scenario). */
function meanOf(a: Measurement, b: Measurement): Measurement {
  const mean = (x: number, y: number) => (x + y) / 2;
  return {
    requestsPerSecond: mean(a.requestsPerSecond, b.requestsPerSecond),
    p50Ms: mean(a.p50Ms, b.p50Ms),
    p99Ms: mean(a.p99Ms, b.p99Ms),
    errors: a.errors + b.errors,
    statuses: {},
    cpuMicrosPerRequest:
      a.cpuMicrosPerRequest === null || b.cpuMicrosPerRequest === null
        ? null
        : mean(a.cpuMicrosPerRequest, b.cpuMicrosPerRequest),
  };
}

async function withServer<T>(start: Promise<BenchServer>, fn: (server: BenchServer) => Promise<T>): Promise<T> {
  const server = await start;
  try {
    return await fn(server);
  } catch (error) {
    process.stderr.write(`\nserver output:\n${server.log}\n`);
    throw error;
  } finally {
    await server.stop();
    if (server.profileDir) printProfile(server.profileDir, server.pid, measured.get(server) ?? []);
  }
}

/**
 * The workers' busy CPU while the scenarios were measured (not while they started, warmed up or
 * waited for the baselines), by what it was spent on, from the profiles `--profile` had them
 * write; with one scenario, also in CPU µs per request.
 */
function printProfile(dir: string, primaryPid: number | undefined, windows: MeasuredWindow[]): void {
  const perRequest = windows.length === 1 ? windows[0]?.cpuMicrosPerRequest : null;
  process.stderr.write(`workers' ${profileText(dir, primaryPid, windows, perRequest)}`);
}

let profiles = 0;

/** An apostate server for the scenarios; with `--profile`, one that writes CPU profiles. */
function apostate(dataDir: string, workers: number, extraArgs: string[] = []): Promise<BenchServer> {
  const profileDir = args.profile ? join(RESULTS_DIR, `profile-${RUN_ID}-${(profiles += 1)}`) : undefined;
  return BenchServer.apostate(logFile, dataDir, { workers, args: extraArgs, profileDir });
}

async function preloaded(root: string, count: number): Promise<{ dataDir: string; result: PreloadResult }> {
  const dataDir = join(root, `data-${count}`);
  process.stderr.write(`preloading ${count.toLocaleString("en")} entities …`);
  const result = await preload(dataDir, count);
  process.stderr.write(` ${result.seconds.toFixed(1)} s\n`);
  return { dataDir, result };
}

const root = mkdtempSync(join(tmpdir(), "apostate-bench-"));
// On "exit", so that an interrupted run (see bench-server.ts) removes its data directories too.
process.once("exit", () => rmSync(root, { recursive: true, force: true }));
const logFile = join(root, "server.log");

const REPLICAS = Number(args.replicas);
if (![1, 2, 3].includes(REPLICAS)) throw new Error("--replicas must be 1, 2 or 3");
if (args.cluster && REPLICAS > 1) {
  await replicationBench({
    entities: ENTITIES,
    load: LOAD,
    root,
    resultsDir: RESULTS_DIR,
    runId: RUN_ID,
    replicas: REPLICAS,
    profile: args.profile,
  });
} else if (args.cluster) {
  await clusterBench({ entities: ENTITIES, load: LOAD, root, resultsDir: RESULTS_DIR, runId: RUN_ID, profile: args.profile });
} else {
  await singleNodeBench();
}

/** The single-node scenarios, their baselines and the table. */
async function singleNodeBench(): Promise<void> {
  const rss: Record<string, number[]> = {};
  const disk: Record<string, PreloadResult> = {};
  const stopAtEnd: BenchServer[] = [];
  try {
    const main = await preloaded(root, ENTITIES);
    disk[String(ENTITIES)] = main.result;
    const now = new Date().toISOString();
    // The baselines answer with a representation of exactly the size of a preloaded entity's.
    const representation = entityJson({
      type: ENTITY_TYPE,
      id: entityId(0),
      version: 1,
      data: JSON.stringify(entityData(0)),
      created_at: now,
      updated_at: now,
    });
    const uniformGets = getRequests(uniformIndex(ENTITIES));
    const zipfGets = getRequests(zipfIndex(ENTITIES));

    process.stderr.write(`baselines (${WORKERS} workers, ${representation.length}-byte JSON)\n`);
    await withServer(BenchServer.baseline(logFile, "http", WORKERS, representation), (server) =>
      run(server, [{ name: "http", label: "baseline: node:http, fixed JSON", requests: uniformGets }]),
    );
    const expressServer = await BenchServer.baseline(join(root, "express.log"), "express", WORKERS, representation);
    stopAtEnd.push(expressServer);
    await run(expressServer, [{ name: "express", label: "baseline: express 5, fixed JSON", requests: uniformGets }]);
    // Started before apostate ever writes to the preloaded directory, so every worker's copy is
    // the data apostate starts from.
    const limitServer = await BenchServer.limit(join(root, "limit.log"), WORKERS, main.dataDir, join(root, "limit"));
    stopAtEnd.push(limitServer);
    pairedBaselines = { express: expressServer, expressRequests: uniformGets, limit: limitServer };

    process.stderr.write(`apostate (${WORKERS} workers, ${ENTITIES.toLocaleString("en")} entities)\n`);
    await withServer(apostate(main.dataDir, WORKERS), async (server) => {
      // Each replayed request is sent once first, so every request the scenario sends is a replay.
      const replayKeys = Math.min(REPLAY_KEYS, ENTITIES);
      if (selected("replay")) {
        for (let i = 0; i < replayKeys; i += 1) {
          await send(server.url, replayRequest(i));
          // Each limit worker keeps its own copy, so each must see the key once; new connections
          // go to the workers in turn.
          for (let copy = 0; copy < 2 * WORKERS; copy += 1) await sendOnNewConnection(limitServer.url, replayRequest(i));
        }
      }
      const pickReplay = uniformIndex(replayKeys);
      await run(server, [
        { name: "get", label: "GET by key, uniform", requests: uniformGets, target: 0.85, limitTarget: 0.8 },
        {
          name: "get-zipf",
          label: "GET by key, Zipf s=1.1",
          requests: zipfGets,
          target: 0.85,
          limitTarget: 0.8,
        },
        { name: "put", label: "PUT replace", requests: putRequests(uniformIndex(ENTITIES)), target: 0.7, limitTarget: 0.6 },
        { name: "patch", label: "PATCH merge", requests: patchRequests(ENTITIES), target: 0.7 },
        {
          name: "ops",
          label: "POST ops inc + Idempotency-Key",
          requests: opsRequests(ENTITIES),
          target: 0.6,
          limitTarget: 0.8,
        },
        { name: "replay", label: "POST ops, replayed key", requests: () => replayRequest(pickReplay()), target: 0.8 },
        {
          name: "list",
          label: "GET list, first page (100)",
          requests: () => ({ method: "GET", path: `/v1/entities/${ENTITY_TYPE}` }),
          limitTarget: 0.5,
        },
        { name: "mixed", label: "mixed 80% GET / 20% PUT", requests: mixedRequests(ENTITIES) },
      ]);
      rss[String(ENTITIES)] = server.workerPeakRss();
    });

    if (selected("get-logged") || selected("get-zipf-logged")) {
      // What a log line per request costs: the default until `--log-requests` made it opt-in.
      process.stderr.write("apostate --log-requests all\n");
      await withServer(apostate(main.dataDir, WORKERS, ["--log-requests", "all"]), (server) =>
        run(server, [
          { name: "get-logged", label: "GET by key, uniform, --log-requests all", requests: uniformGets },
          { name: "get-zipf-logged", label: "GET by key, Zipf s=1.1, --log-requests all", requests: zipfGets },
        ]),
      );
    }

    if (selected("put-power")) {
      process.stderr.write("apostate --durability=power\n");
      await withServer(apostate(main.dataDir, WORKERS, ["--durability", "power"]), (server) =>
        run(server, [
          { name: "put-power", label: "PUT replace, --durability=power", requests: putRequests(uniformIndex(ENTITIES)) },
        ]),
      );
    }

    if (WORKERS > 1 && (selected("get-1w") || selected("put-1w"))) {
      process.stderr.write("apostate (1 worker)\n");
      await withServer(apostate(main.dataDir, 1), (server) =>
        run(server, [
          { name: "get-1w", label: "GET by key, 1 worker", requests: uniformGets },
          { name: "put-1w", label: "PUT replace, 1 worker", requests: putRequests(uniformIndex(ENTITIES)) },
        ]),
      );
    }

    for (const count of [SMALL_ENTITIES, ...(args.million ? [LARGE_ENTITIES] : [])]) {
      const name = `get-${count}`;
      if (count === ENTITIES || !selected(name)) continue;
      const scaled = await preloaded(root, count);
      disk[String(count)] = scaled.result;
      // The row's requests name keys the main data set may not hold: its limit serves the same data.
      const limitWorkDir = join(root, `limit-${count}`);
      const scaledLimit = await BenchServer.limit(join(root, `limit-${count}.log`), WORKERS, scaled.dataDir, limitWorkDir);
      pairedBaselines = { express: expressServer, expressRequests: uniformGets, limit: scaledLimit };
      try {
        await withServer(apostate(scaled.dataDir, WORKERS), async (server) => {
          await run(server, [
            { name, label: `GET by key, ${count.toLocaleString("en")} entities`, requests: getRequests(uniformIndex(count)) },
          ]);
          rss[String(count)] = server.workerPeakRss();
        });
      } finally {
        await scaledLimit.stop();
      }
      rmSync(limitWorkDir, { recursive: true, force: true });
      rmSync(scaled.dataDir, { recursive: true, force: true });
    }

    const express = outcomes.find((outcome) => outcome.name === "express");
    const rows: Row[] = outcomes.map((outcome) => {
      const baseline = outcome.paired ?? express;
      return {
        ...outcome,
        ratio: baseline ? outcome.requestsPerSecond / baseline.requestsPerSecond : null,
        limitRatio: outcome.pairedLimit ? outcome.requestsPerSecond / outcome.pairedLimit.requestsPerSecond : null,
      };
    });
    const machine = `${availableParallelism()} cores (${cpus()[0]?.model ?? "unknown CPU"}), node ${process.version}`;
    const settings = {
      entities: ENTITIES,
      workers: WORKERS,
      connections: LOAD.connections,
      seconds: LOAD.seconds,
      warmupSeconds: LOAD.warmupSeconds,
    };
    const report = formatTable(rows, { express, rss, disk, settings, machine });
    process.stdout.write(`${report}\n`);
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `bench-${RUN_ID}.json`);
    writeFileSync(file, `${JSON.stringify({ machine, settings, rows, rss, disk }, null, 2)}\n`);
    process.stderr.write(`written to ${file}\n`);
  } finally {
    for (const server of stopAtEnd) await server.stop();
  }
}
