import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { slotOf } from "../schema/placement.js";
import { DEFAULT_LEASE_TTL_SECONDS } from "../server/cluster/topology.js";
import { IncrementLoad } from "../test/support/increment-load.js";
import type { HistoryVerdict } from "../test/support/increment-history.js";
import { BenchCluster, type ClusterStatus, type MoveAnswer } from "./bench-cluster.js";
import type { LoadOptions, Measurement } from "./load.js";
import { measureCost, printProfiles, type Measured } from "./node-cost.js";
import { preload } from "./preload.js";
import { ENTITY_TYPE, entityId, getRequests, putRequests } from "./workload.js";

export interface ReplicationBenchSettings {
  entities: number;
  load: LoadOptions;
  root: string;
  resultsDir: string;
  runId: string;
  replicas: number;
  /** Have every node write CPU profiles, and print where each scenario's CPU went. */
  profile: boolean;
}

const NODES = 3;
/** The targets: a replicated PUT's rate against an unreplicated one's, a GET's CPU, and the failover. */
const PUT_RATE_TARGET = 0.6;
const GET_CPU_LIMIT = 1.1;
const FAILOVER_LIMIT_S = DEFAULT_LEASE_TTL_SECONDS + 5;

interface Row {
  scenario: string;
  replicas: number;
  measurement: Measurement;
  /** CPU µs per request of each node's processes. */
  cpuByNode: Record<string, number>;
}

/**
 * `npm run bench -- --cluster --replicas 2`: the same three nodes of one worker each, over the
 * same preloaded data and rebalanced alike, first without replicas and then with `--replicas N`:
 * GET and PUT by key sent straight to the owner (req/s and the CPU of every process of every
 * node per request); then, with replicas, `kill -9` of a node that owns shards (not the
 * coordinator) under keyed increments through the other nodes: how long until a key of its
 * shards can be written again, and the history check of every increment.
 */
export async function replicationBench(settings: ReplicationBenchSettings): Promise<void> {
  const { root, entities, replicas } = settings;
  const loadAverage = { start: loadavg()[0] ?? 0, end: 0 };
  const seed = join(root, "data-seed");
  process.stderr.write(`preloading ${entities.toLocaleString("en")} entities …`);
  const preloaded = await preload(seed, entities);
  process.stderr.write(` ${preloaded.seconds.toFixed(1)} s\n`);

  const rows: Row[] = [];
  const measured: Measured[] = [];
  for (const copies of [1, replicas]) {
    const dir = join(root, `run-${copies}`);
    mkdirSync(dir, { recursive: true });
    cpSync(seed, join(dir, "data-n1"), { recursive: true });
    process.stderr.write(`${NODES} nodes, --replicas ${copies}: starting and rebalancing …\n`);
    const cluster = await BenchCluster.start(dir, {
      nodes: NODES,
      firstDataDir: join(dir, "data-n1"),
      args: ["--replicas", String(copies)],
      profileDir: (node) =>
        settings.profile ? join(settings.resultsDir, `profile-${settings.runId}-r${copies}-${node}`) : undefined,
    });
    try {
      await rebalance(cluster);
      if (copies > 1) await replicated(cluster, copies);
      for (const cost of await costToOwner(cluster, settings, copies)) {
        rows.push(cost.row);
        measured.push(cost.measured);
      }
      if (copies > 1) {
        const failover = await failoverUnderLoad(cluster);
        loadAverage.end = loadavg()[0] ?? 0;
        const machine = `${availableParallelism()} cores (${cpus()[0]?.model ?? "unknown CPU"}), node ${process.version}`;
        process.stdout.write(`${report(rows, failover, { machine, loadAverage, settings })}\n`);
        mkdirSync(settings.resultsDir, { recursive: true });
        const file = join(settings.resultsDir, `replication-bench-${settings.runId}.json`);
        writeFileSync(file, `${JSON.stringify({ machine, loadAverage, rows, failover }, null, 2)}\n`);
        process.stderr.write(`written to ${file}\n`);
      }
    } catch (error) {
      process.stderr.write(`\nnode output:\n${cluster.logs}\n`);
      throw error;
    } finally {
      await cluster.stop();
    }
  }
  // The nodes write their profiles as they stop.
  printProfiles(measured);
}

async function rebalance(cluster: BenchCluster): Promise<void> {
  const n1 = cluster.node("n1").url;
  const { moves } = await cluster.call<{ moves: MoveAnswer[] }>(n1, "POST", "/admin/cluster/rebalance");
  for (const { id } of moves) {
    await cluster.waitUntil(`move ${id} is done`, async () => {
      const move = await cluster.call<MoveAnswer>(n1, "GET", `/admin/cluster/moves/${id}`);
      if (move.state === "aborted") throw new Error(`move ${id} aborted: ${move.detail}`);
      return move.state === "done";
    });
  }
}

/** Waits until every shard has `copies - 1` followers, all in sync. */
async function replicated(cluster: BenchCluster, copies: number): Promise<void> {
  await cluster.waitUntil("every shard has its followers, in sync", async () => {
    const status = await cluster.call<ClusterStatus>(cluster.node("n1").url, "GET", "/admin/cluster");
    return status.shards.every(
      (shard) => shard.followers.length === copies - 1 && shard.replication.every((copy) => copy.synced === true),
    );
  });
}

/** GET and PUT by key to n1 for the keys n1 owns, CPU counted over every node. */
async function costToOwner(
  cluster: BenchCluster,
  settings: ReplicationBenchSettings,
  copies: number,
): Promise<{ row: Row; measured: Measured }[]> {
  const owner = cluster.node("n1");
  const topology = await cluster.topology(owner.url);
  const owned = Array.from({ length: settings.entities }, (_, index) => index).filter((index) => {
    const slot = slotOf(ENTITY_TYPE, entityId(index));
    return topology.shards.find(({ slots }) => slots.from <= slot && slot <= slots.to)?.node === owner.id;
  });
  const pick = () => owned[Math.floor(Math.random() * owned.length)] as number;
  const servers = cluster.nodes.map(({ id, server }) => ({ id, server }));
  const costs: { row: Row; measured: Measured }[] = [];
  for (const [scenario, requests] of [
    ["GET by key", getRequests(pick)],
    ["PUT replace", putRequests(pick)],
  ] as const) {
    process.stderr.write(`  ${scenario}, --replicas ${copies}, to ${owner.id} …`);
    const { measurement, window, cpuByNode } = await measureCost(owner.url, servers, requests, settings.load);
    const byNode = Object.entries(cpuByNode).map(([id, micros]) => `${id} ${micros.toFixed(0)}`);
    process.stderr.write(
      ` ${Math.round(measurement.requestsPerSecond)} req/s, ${measurement.cpuMicrosPerRequest?.toFixed(0) ?? "?"} µs/req (${byNode.join(", ")})\n`,
    );
    const label = `${scenario}, --replicas ${copies}`;
    costs.push({
      row: { scenario, replicas: copies, measurement, cpuByNode },
      measured: { row: { label, cpuMicrosPerRequest: measurement.cpuMicrosPerRequest, cpuByNode }, window, servers },
    });
  }
  return costs;
}

interface FailoverFigures {
  victim: string;
  shards: number[];
  seconds: number;
  increments: number;
  acknowledged: number;
  verdict: HistoryVerdict;
}

/**
 * `kill -9` of a node that owns shards and does not coordinate, under keyed increments through
 * the other nodes; the time until a key of one of its shards is written again.
 */
async function failoverUnderLoad(cluster: BenchCluster): Promise<FailoverFigures> {
  const status = await cluster.call<ClusterStatus>(cluster.node("n1").url, "GET", "/admin/cluster");
  const victim = status.nodes.find((node) => node.node !== status.coordinator && node.shards.length > 0);
  if (!victim) throw new Error("no node but the coordinator owns a shard");
  const survivors = cluster.nodes.filter(({ id }) => id !== victim.node).map(({ url }) => url);
  const shard = status.shards.find((entry) => entry.shard === victim.shards[0]);
  if (!shard) throw new Error(`no shard ${victim.shards[0]}`);
  let probe = 0;
  while (!within(slotOf("probe", `p${probe}`), shard.slots)) probe += 1;
  const load = IncrementLoad.start({ urls: () => survivors, counters: 50, concurrency: 8 });
  process.stderr.write(`kill -9 of ${victim.node} (owner of shards ${victim.shards.join(", ")}) under increments …`);
  await sleep(2_000);
  await cluster.node(victim.node).server.crash();
  const crashedAt = performance.now();
  for (;;) {
    const url = survivors[probe % survivors.length] as string;
    const answer = await fetch(`${url}/v1/entities/probe/p${probe}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: "{}",
      signal: AbortSignal.timeout(2_000),
    }).catch(() => undefined);
    if (answer && answer.status < 300) break;
    if (performance.now() - crashedAt > 120_000) throw new Error("the victim's shards were not written again within 120 s");
    await sleep(100);
  }
  const seconds = (performance.now() - crashedAt) / 1000;
  await sleep(2_000);
  const history = await load.stop();
  const verdict = await load.verify(survivors[0] as string);
  process.stderr.write(` written again after ${seconds.toFixed(1)} s\n`);
  return {
    victim: victim.node,
    shards: victim.shards,
    seconds,
    increments: history.length,
    acknowledged: load.acknowledged,
    verdict,
  };
}

const within = (slot: number, slots: { from: number; to: number }) => slots.from <= slot && slot <= slots.to;

function report(
  rows: Row[],
  failover: FailoverFigures,
  context: { machine: string; loadAverage: { start: number; end: number }; settings: ReplicationBenchSettings },
): string {
  const find = (scenario: string, replicas: number) =>
    rows.find((row) => row.scenario === scenario && row.replicas === replicas)?.measurement;
  const { replicas } = context.settings;
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? a / b : undefined);
  const lines = [
    "| scenario | replicas | req/s | p50 ms | p99 ms | errors | CPU µs/req (all nodes) | against 1 replica | target |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const row of rows) {
    const { measurement: m } = row;
    const base = find(row.scenario, 1);
    let against = "";
    let target = "";
    if (row.replicas > 1 && base) {
      if (row.scenario.startsWith("PUT")) {
        const r = ratio(m.requestsPerSecond, base.requestsPerSecond);
        against = r === undefined ? "" : `${r.toFixed(2)} × the req/s`;
        target = r === undefined ? "" : `≥ ${PUT_RATE_TARGET}: ${r >= PUT_RATE_TARGET ? "met" : "MISSED"}`;
      } else {
        const r = ratio(m.cpuMicrosPerRequest, base.cpuMicrosPerRequest);
        against = r === undefined ? "" : `${r.toFixed(2)} × the CPU`;
        target = r === undefined ? "" : `≤ ${GET_CPU_LIMIT}: ${r <= GET_CPU_LIMIT ? "met" : "MISSED"}`;
      }
    }
    lines.push(
      `| ${row.scenario} | ${row.replicas} | ${Math.round(m.requestsPerSecond)} | ${m.p50Ms.toFixed(1)} | ${m.p99Ms.toFixed(1)} | ${m.errors} | ${m.cpuMicrosPerRequest?.toFixed(0) ?? "?"} | ${against} | ${target} |`,
    );
  }
  const { verdict } = failover;
  const failoverLines = [
    "",
    `| kill -9 of ${failover.victim} (owner of shards ${failover.shards.join(", ")}), --replicas ${replicas} | figure | target |`,
    "| --- | --- | --- |",
    `| until a key of its shard is written again | ${failover.seconds.toFixed(1)} s | ≤ ${FAILOVER_LIMIT_S} s (lease TTL ${DEFAULT_LEASE_TTL_SECONDS} s + 5): ${failover.seconds <= FAILOVER_LIMIT_S ? "met" : "MISSED"} |`,
    `| history check | ${verdict.lost} lost, ${verdict.doubled} doubled (${failover.increments} increments, ${failover.acknowledged} acknowledged) | 0 lost, 0 doubled: ${verdict.lost === 0 && verdict.doubled === 0 && verdict.problems.length === 0 ? "passes" : "FAILS"} |`,
  ];
  const { load } = context.settings;
  const footer = [
    "",
    `${context.machine}; ${NODES} nodes of 1 worker, each run over the same ${context.settings.entities.toLocaleString("en")} preloaded entities, rebalanced; ${load.connections} connections, ${load.seconds} s per scenario after ${load.warmupSeconds} s warm-up; load average ${context.loadAverage.start.toFixed(1)} at the start, ${context.loadAverage.end.toFixed(1)} at the end.`,
  ];
  return [...lines, ...failoverLines, ...footer].join("\n");
}
