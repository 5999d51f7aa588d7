/**
 * The CPU a forwarded request costs against one sent straight to its owner, on a cluster that is
 * already running, in alternating rounds: GET and PUT by key to the owner, then the same through
 * another node, `--rounds` times, each round `--duration` seconds at `--connections`. CPU is that
 * of every process of every node (primaries and workers, found by their `--data-dir` under
 * `--cluster-data`; etcd not counted) divided by the requests answered, from `/proc`, so Linux
 * only; each node's share is printed too. Alternating keeps what other load the machine
 * carries alike in both, and the medians of the rounds shrug off a round that met a burst of
 * it. Two builds run one after the other on the same ports compare before and after a change.
 *
 * @example
 * apostate cluster up --nodes 3          # in another terminal: n1 keeps shards 0-2
 * npx tsx bench/forward-rounds.ts --url http://127.0.0.1:8080 --cluster-data ./cluster-data
 */
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { slotOf } from "../schema/placement.js";
import { cpuSeconds } from "./bench-server.js";
import type { Topology } from "./bench-cluster.js";
import { measure, type BenchRequest, type LoadOptions } from "./load.js";
import { ENTITY_TYPE, entityData, entityId, entityPath, getRequests, JSON_HEADERS, putRequests } from "./workload.js";

const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8080" },
    "cluster-data": { type: "string", default: "cluster-data" },
    entities: { type: "string", default: "5000" },
    rounds: { type: "string", default: "5" },
    duration: { type: "string", default: "3" },
    connections: { type: "string", default: "64" },
  },
});

const topology = (await (await fetch(new URL("/v1/topology", args.url))).json()) as Topology;
const owner = topology.shards[0];
const other = topology.shards.find((shard) => shard.node !== owner?.node);
if (!owner?.url || !other?.url) throw new Error(`the map at ${args.url} needs shards on two nodes with URLs`);
const [ownerUrl, forwarderUrl] = [owner.url, other.url];
const nodeOf = (slot: number) => topology.shards.find(({ slots }) => slot >= slots.from && slot <= slots.to)?.node;

/** The first `--entities` indexes whose keys the owner holds, written to it before the rounds. */
const owned: number[] = [];
for (let index = 0; owned.length < Number(args.entities); index += 1)
  if (nodeOf(slotOf(ENTITY_TYPE, entityId(index))) === owner.node) owned.push(index);
for (let i = 0; i < owned.length; i += 64) {
  await Promise.all(
    owned.slice(i, i + 64).map(async (index) => {
      const body = JSON.stringify(entityData(index));
      const answer = await fetch(ownerUrl + entityPath(index), { method: "PUT", headers: JSON_HEADERS, body });
      if (answer.status > 201) throw new Error(`PUT ${entityPath(index)} answered ${answer.status}`);
    }),
  );
}
const pick = () => owned[Math.floor(Math.random() * owned.length)] as number;

/** Every process whose command line names a node's data directory under `--cluster-data`, by node. */
const nodeDirs = new Map(
  [...new Set(topology.shards.map(({ node }) => node))].map((node) => [resolve(args["cluster-data"], node), node]),
);
const pidsByNode = new Map<string, string[]>();
for (const pid of readdirSync("/proc").filter((entry) => /^\d+$/.test(entry))) {
  let node: string | undefined;
  try {
    node = readFileSync(`/proc/${pid}/cmdline`, "utf8")
      .split("\0")
      .map((arg) => nodeDirs.get(arg))
      .find((found) => found !== undefined);
  } catch {
    continue;
  }
  if (node !== undefined) pidsByNode.set(node, [...(pidsByNode.get(node) ?? []), pid]);
}
const clusterPids = [...pidsByNode.values()].flat();
if (clusterPids.length === 0) throw new Error(`no process serves a data directory under ${resolve(args["cluster-data"])}`);
/** Each node's CPU at the readings `measure` takes (before and after a round), for the split by node. */
const readings: Map<string, number>[] = [];
const clusterCpu = () => {
  const byNode = new Map([...pidsByNode].map(([node, pids]) => [node, pids.reduce((total, pid) => total + cpuSeconds(pid), 0)]));
  readings.push(byNode);
  return [...byNode.values()].reduce((total, seconds) => total + seconds, 0);
};

const load: LoadOptions = { connections: Number(args.connections), seconds: Number(args.duration), warmupSeconds: 1 };
const scenarios: [string, string, () => BenchRequest][] = [
  ["GET direct", ownerUrl, getRequests(pick)],
  ["GET forwarded", forwarderUrl, getRequests(pick)],
  ["PUT direct", ownerUrl, putRequests(pick)],
  ["PUT forwarded", forwarderUrl, putRequests(pick)],
];
const micros = new Map<string, number[]>(scenarios.map(([name]) => [name, []]));
/** Per scenario and node, µs of CPU per request in each round. */
const nodeMicros = new Map<string, Map<string, number[]>>(scenarios.map(([name]) => [name, new Map()]));
for (let round = 0; round < Number(args.rounds); round += 1) {
  for (const [name, url, requests] of scenarios) {
    const { cpuMicrosPerRequest, errors, requestsPerSecond } = await measure(
      url,
      requests,
      { ...load, warmupSeconds: round === 0 ? 1 : 0 },
      clusterCpu,
    );
    if (errors > 0 || cpuMicrosPerRequest === null) throw new Error(`${name}: ${errors} errors`);
    micros.get(name)?.push(cpuMicrosPerRequest);
    const [before, after] = readings.splice(0).slice(-2) as [Map<string, number>, Map<string, number>];
    for (const [node, seconds] of after) {
      const perNode = nodeMicros.get(name) as Map<string, number[]>;
      const spent = ((seconds - (before.get(node) ?? seconds)) * 1e6) / (requestsPerSecond * load.seconds);
      perNode.set(node, [...(perNode.get(node) ?? []), spent]);
    }
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
process.stdout.write(
  `${clusterPids.length} processes; ${owner.node} owns the keys, ${other.node} forwards; ${args.rounds} rounds of ${args.duration} s at ${args.connections} connections\n`,
);
for (const [name, values] of micros) {
  const byNode = [...(nodeMicros.get(name) ?? [])]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([node, spent]) => `${node} ${median(spent).toFixed(0)}`);
  process.stdout.write(
    `${name}: median ${median(values).toFixed(0)} µs/req (rounds ${values.map((v) => v.toFixed(0)).join(", ")}; by node ${byNode.join(", ")})\n`,
  );
}
for (const verb of ["GET", "PUT"]) {
  const direct = micros.get(`${verb} direct`) ?? [];
  const ratios = (micros.get(`${verb} forwarded`) ?? []).map((forwarded, i) => forwarded / (direct[i] as number));
  process.stdout.write(
    `${verb} forwarded / direct: median ${median(ratios).toFixed(2)} (rounds ${ratios.map((r) => r.toFixed(2)).join(", ")})\n`,
  );
}
