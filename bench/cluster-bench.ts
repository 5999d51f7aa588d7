import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { slotOf } from "../schema/placement.js";
import { IncrementLoad } from "../test/support/increment-load.js";
import { BenchCluster, type MoveAnswer, type Topology } from "./bench-cluster.js";
import { BenchServer } from "./bench-server.js";
import type { BenchRequest, LoadOptions } from "./load.js";
import { idleCpu, measureCost, printProfiles, type Measured, type Server } from "./node-cost.js";
import { preload, PRELOAD_SHARDS } from "./preload.js";
import { formatClusterReport, SINGLE, type CostRow, type MoveFigures } from "./cluster-report.js";
import { ENTITY_TYPE, entityId, getRequests, putRequests } from "./workload.js";

export interface ClusterBenchSettings {
  /** Entities the GET and PUT scenarios pick from. */
  entities: number;
  load: LoadOptions;
  /** A temporary directory for the data directories and logs, removed by the caller. */
  root: string;
  resultsDir: string;
  runId: string;
  /** Have every server write CPU profiles, and print where each scenario's CPU went. */
  profile: boolean;
}

const NODES = 3;
/** The shard the bench moves: preloaded to {@link MOVED_ENTITIES} entities on the founding node. */
const MOVED_SHARD = PRELOAD_SHARDS - 1;
const MOVED_ENTITIES = 100_000;
const COUNTERS = 50;
const WRITERS = 16;
/** How long the write load runs before the move and after it, so the move happens under a steady load. */
const STEADY_MS = 2_000;
const MOVE_TIMEOUT_MS = 180_000;
const COUNTER_TYPE = "counter";
/** The paced rows' rate as a share of what the forwarding node managed unpaced. */
const PACED_SHARE = 0.8;
/** How long the servers are watched idle, for the CPU they spend with no request to serve. */
const IDLE_SECONDS = 5;

/**
 * `npm run bench -- --cluster`: three nodes of one worker each on a real etcd, next to a single
 * node of one worker over the same data, in one run:
 *
 * 1. a shard of {@link MOVED_ENTITIES} entities moves from the founding node to another under a
 *    steady load of keyed increments through random nodes (the whole move, what the writers that
 *    met the freeze waited, and the history check of every increment);
 * 2. CPU per GET and PUT of every process of every node together, for keys sent straight to their
 *    owner and the same keys sent to a node that forwards them, against the single node; to tell
 *    the hop from what apostate adds to it, the same through a bare node:http proxy, and direct
 *    and forwarded again at one fixed rate; before that, what each server spends idle.
 *
 * The move runs first, so that the second part's keys are chosen from a map with shards on two nodes.
 */
export async function clusterBench(settings: ClusterBenchSettings): Promise<void> {
  const { root, entities } = settings;
  const loadAverage = { start: loadavg()[0] ?? 0, end: 0 };
  const firstDataDir = join(root, "data-n1");
  process.stderr.write(
    `preloading ${entities.toLocaleString("en")} entities, and shard ${MOVED_SHARD} up to ${MOVED_ENTITIES.toLocaleString("en")} …`,
  );
  const preloaded = await preload(firstDataDir, entities, { shard: MOVED_SHARD, entities: MOVED_ENTITIES });
  process.stderr.write(` ${preloaded.entities.toLocaleString("en")} in ${preloaded.seconds.toFixed(1)} s\n`);
  // Copied before the cluster stamps its epochs into the founding node's files.
  const singleDataDir = join(root, "data-single");
  cpSync(firstDataDir, singleDataDir, { recursive: true });

  process.stderr.write(`starting etcd, ${NODES} cluster nodes and a single node (1 worker each) …\n`);
  const profileDir = (server: string) =>
    settings.profile ? join(settings.resultsDir, `profile-${settings.runId}-${server}`) : undefined;
  const single = await BenchServer.apostate(join(root, "single.log"), singleDataDir, {
    workers: 1,
    profileDir: profileDir("single"),
  });
  let cluster: BenchCluster | undefined;
  let measured: Measured<CostRow>[] | undefined;
  try {
    cluster = await BenchCluster.start(root, { nodes: NODES, firstDataDir, profileDir });
    const move = await moveUnderLoad(cluster);
    const cost = await costPerRequest(cluster, single, settings);
    measured = cost.measured;
    const rows = measured.map(({ row }) => row);
    loadAverage.end = loadavg()[0] ?? 0;
    const machine = `${availableParallelism()} cores (${cpus()[0]?.model ?? "unknown CPU"}), node ${process.version}`;
    const context = { machine, loadAverage, load: settings.load, entities: preloaded.entities, nodes: NODES, idle: cost.idle };
    process.stdout.write(`${formatClusterReport(rows, move, context)}\n`);
    mkdirSync(settings.resultsDir, { recursive: true });
    const file = join(settings.resultsDir, `cluster-bench-${settings.runId}.json`);
    writeFileSync(file, `${JSON.stringify({ ...context, rows, move }, null, 2)}\n`);
    process.stderr.write(`written to ${file}\n`);
  } catch (error) {
    process.stderr.write(`\nnode output:\n${cluster?.logs ?? ""}\n--- single\n${single.log}\n`);
    throw error;
  } finally {
    await Promise.all([single.stop(), cluster?.stop()]);
  }
  // The servers write their profiles as they stop.
  if (measured) printProfiles(measured);
}

/** The node that owns `slot` in `topology`. */
function ownerOf(topology: Topology, slot: number): string | undefined {
  return topology.shards.find(({ slots }) => slot >= slots.from && slot <= slots.to)?.node;
}

/** The first `count` ids c0, c1, … of `type` whose slot lies in `slots`. */
function idsIn(type: string, slots: { from: number; to: number }, count: number): string[] {
  const ids: string[] = [];
  for (let i = 0; ids.length < count; i += 1) {
    const slot = slotOf(type, `c${i}`);
    if (slot >= slots.from && slot <= slots.to) ids.push(`c${i}`);
  }
  return ids;
}

/**
 * Moves {@link MOVED_SHARD} from n1 to n2 (asked of n3) while {@link WRITERS} senders increment
 * counters that live in it, through random nodes, each increment with its own Idempotency-Key
 * and retried with it 100 ms after a 503 (the server says `Retry-After: 1`).
 */
async function moveUnderLoad(cluster: BenchCluster): Promise<MoveFigures> {
  const [source, target, asked] = cluster.nodes;
  if (!source || !target || !asked) throw new Error(`the move needs ${NODES} nodes`);
  const placement = (await cluster.topology(source.url)).shards.find(({ shard }) => shard === MOVED_SHARD);
  if (placement?.node !== source.id) throw new Error(`shard ${MOVED_SHARD} is not on ${source.id}: ${JSON.stringify(placement)}`);
  const load = IncrementLoad.start({
    urls: () => cluster.nodes.map(({ url }) => url),
    counters: idsIn(COUNTER_TYPE, placement.slots, COUNTERS),
    concurrency: WRITERS,
  });
  process.stderr.write(
    `moving shard ${MOVED_SHARD} (${MOVED_ENTITIES.toLocaleString("en")} entities) from ${source.id} to ${target.id} …`,
  );
  await sleep(STEADY_MS);
  const started = performance.now();
  const { id } = await cluster.call<MoveAnswer>(asked.url, "POST", "/admin/cluster/moves", { shard: MOVED_SHARD, to: target.id });
  const states: MoveFigures["states"] = [];
  let last: MoveAnswer | undefined;
  await cluster.waitUntil(
    `move ${id} ends`,
    async () => {
      last = await cluster.call<MoveAnswer>(asked.url, "GET", `/admin/cluster/moves/${id}`);
      if (states.at(-1)?.state !== last.state)
        states.push({ state: last.state, atSeconds: (performance.now() - started) / 1000 });
      return last.state === "done" || last.state === "aborted";
    },
    MOVE_TIMEOUT_MS,
  );
  const seconds = (performance.now() - started) / 1000;
  if (last?.state !== "done") throw new Error(`move ${id} ended ${last?.state}: ${last?.detail}`);
  await sleep(STEADY_MS);
  const history = await load.stop();
  const verdict = await load.verify(source.url);
  process.stderr.write(` ${seconds.toFixed(1)} s\n`);
  return {
    shard: MOVED_SHARD,
    entities: MOVED_ENTITIES,
    from: source.id,
    to: target.id,
    seconds,
    states,
    writers: WRITERS,
    counters: COUNTERS,
    increments: history.length,
    acknowledged: load.acknowledged,
    unknown: history.filter(({ outcome }) => outcome.kind === "unknown").length,
    refusedForMs: [...load.refusedForMs].sort((a, b) => a - b),
    verdict,
  };
}

/** Where a scenario's requests go, and the servers whose processes' CPU counts for it. */
interface Target {
  kind: "single" | "direct" | "forwarded" | "proxy";
  description: string;
  sentTo: string;
  url: string;
  servers: Server[];
}

/**
 * CPU per request (every process of every node together) for GET and PUT by key: on the single
 * node, sent straight to the owner, sent to another node that forwards them, and sent through a
 * bare node:http proxy to the owner, all for the same keys (those the owner holds, by GET
 * /v1/topology and the placement function). Before, the idle CPU of every server.
 */
async function costPerRequest(
  cluster: BenchCluster,
  single: BenchServer,
  settings: ClusterBenchSettings,
): Promise<{ measured: Measured<CostRow>[]; idle: Record<string, number> }> {
  const [owner, forwarder] = cluster.nodes;
  if (!owner || !forwarder) throw new Error("forwarding needs two nodes");
  const topology = await cluster.topology(owner.url);
  const owned = Array.from({ length: settings.entities }, (_, index) => index).filter(
    (index) => ownerOf(topology, slotOf(ENTITY_TYPE, entityId(index))) === owner.id,
  );
  const pick = () => owned[Math.floor(Math.random() * owned.length)] as number;
  await expectServedBy(forwarder.url, getRequests(pick)(), owner.id);
  const proxy = await BenchServer.proxy(join(settings.root, "proxy.log"), owner.url);
  try {
    const nodes = cluster.nodes.map(({ id, server }) => ({ id, server }));
    const singleNode = { id: "single", server: single };
    process.stderr.write(`CPU of every server, idle for ${IDLE_SECONDS} s …`);
    const idle = await idleCpu([singleNode, ...nodes], IDLE_SECONDS);
    process.stderr.write(
      ` ${Object.entries(idle)
        .map(([id, ms]) => `${id} ${ms.toFixed(0)}`)
        .join(", ")} ms/s\n`,
    );
    process.stderr.write(`CPU per request for the ${owned.length.toLocaleString("en")} keys ${owner.id} owns\n`);
    const targets: Target[] = [
      { kind: "single", description: "single node", sentTo: SINGLE, url: single.url, servers: [singleNode] },
      { kind: "direct", description: "cluster, to the owner", sentTo: owner.id, url: owner.url, servers: nodes },
      {
        kind: "forwarded",
        description: "cluster, forwarded",
        sentTo: `${forwarder.id} → ${owner.id}`,
        url: forwarder.url,
        servers: nodes,
      },
      {
        kind: "proxy",
        description: "cluster, through a bare node:http proxy",
        sentTo: `proxy → ${owner.id}`,
        url: proxy.url,
        servers: [{ id: "proxy", server: proxy }, ...nodes],
      },
    ];
    const measured: Measured<CostRow>[] = [];
    const run = async (verb: string, requests: () => BenchRequest, target: Target, rate?: number) => {
      const paced = rate === undefined ? "" : `, at ${rate} req/s`;
      const label = `${verb === "get" ? "GET by key" : "PUT replace"}, ${target.description}${paced}`;
      process.stderr.write(`  ${label} …`);
      const { measurement, window, cpuByNode } = await measureCost(target.url, target.servers, requests, {
        ...settings.load,
        rate,
      });
      process.stderr.write(
        ` ${Math.round(measurement.requestsPerSecond)} req/s, ${measurement.cpuMicrosPerRequest?.toFixed(0) ?? "?"} µs/req\n`,
      );
      const name = `${verb}-${target.kind}${rate === undefined ? "" : "-paced"}`;
      const row = { name, label, sentTo: target.sentTo, ...measurement, cpuByNode };
      measured.push({ row, window, servers: target.servers });
      return row;
    };
    for (const [verb, requests] of [
      ["get", getRequests(pick)],
      ["put", putRequests(pick)],
    ] as const) {
      let forwardedRate = 0;
      for (const target of targets) {
        const row = await run(verb, requests, target);
        if (target.kind === "forwarded") forwardedRate = row.requestsPerSecond;
      }
      // A node batches more of what arrives faster (one group commit, one write(2) for many
      // answers), so the forward is also compared at one rate that both can keep up with.
      const rate = Math.max(1, Math.round((forwardedRate * PACED_SHARE) / 10) * 10);
      for (const target of targets.filter(({ kind }) => kind === "direct" || kind === "forwarded")) {
        await run(verb, requests, target, rate);
      }
    }
    return { measured, idle };
  } finally {
    await proxy.stop();
  }
}

/** Checks that `url` hands `request` on to `node`, so the forwarded rows measure a forward. */
async function expectServedBy(url: string, request: BenchRequest, node: string): Promise<void> {
  const answer = await fetch(url + request.path, { method: request.method });
  await answer.arrayBuffer();
  const servedBy = answer.headers.get("apostate-served-by");
  if (answer.status !== 200 || servedBy !== node) {
    throw new Error(
      `${request.method} ${request.path} through ${url} answered ${answer.status}, served by ${servedBy}, not ${node}`,
    );
  }
}
