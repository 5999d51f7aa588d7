import { SLOT_COUNT } from "../../schema/placement.js";

/** The default `--lease-ttl`: a dead node's key disappears within this many seconds. */
export const DEFAULT_LEASE_TTL_SECONDS = 10;

/** Node ids and cluster names: short, lower case, safe in an etcd key and a log line. */
const NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;

export function isNodeId(value: string): boolean {
  return NAME.test(value);
}

export function isClusterName(value: string): boolean {
  return NAME.test(value);
}

export interface SlotRange {
  from: number;
  to: number;
}

/** `moving` and `splitting` shards are busy: a rebalance leaves them where they are. */
const SHARD_STATES = ["active", "moving", "splitting"] as const;
type ShardState = (typeof SHARD_STATES)[number];

export interface ShardAssignment {
  shard: number;
  slots: SlotRange;
  node: string;
  followers: string[];
  /** The map revision at which `node` became the owner: the fence the shard file checks. */
  epoch: number;
  state: ShardState;
}

/** Who owns which slots. `version` is the etcd revision at which this map was written. */
export interface ClusterMap {
  version: number;
  shards: ShardAssignment[];
}

/** A node that holds a lease, as registered under `nodes/<node>`. */
export interface LiveNode {
  node: string;
  url: string;
}

/** The map as a client sees it: `GET /v1/topology`. `url` is null while the owner is not alive. */
export interface TopologyAnswer {
  version: number;
  slots: typeof SLOT_COUNT;
  shards: { shard: number; slots: SlotRange; node: string; url: string | null }[];
}

export interface ShardMove {
  shard: number;
  from: string;
  to: string;
}

/** A map that breaks one of the rules `mapProblem` checks. */
export class InvalidClusterMapError extends Error {}

const isCount = (value: number, min: number) => Number.isSafeInteger(value) && value >= min;

function shardProblem(shard: ShardAssignment): string | undefined {
  const name = `shard ${shard.shard}`;
  if (!isCount(shard.shard, 0)) return `shard id ${shard.shard} is not a non-negative integer`;
  const { from, to } = shard.slots;
  if (!isCount(from, 0) || !isCount(to, 0) || from > to || to >= SLOT_COUNT) {
    return `${name} has slots ${from}-${to}, not a range within 0-${SLOT_COUNT - 1}`;
  }
  if (!isNodeId(shard.node)) return `${name} names owner "${shard.node}", not a node id`;
  for (const follower of shard.followers) {
    if (!isNodeId(follower)) return `${name} names follower "${follower}", not a node id`;
    if (follower === shard.node) return `${name} names its owner ${follower} as a follower`;
  }
  if (new Set(shard.followers).size !== shard.followers.length) return `${name} names a follower twice`;
  if (!isCount(shard.epoch, 1)) return `${name} has epoch ${shard.epoch}, not a positive integer`;
  if (!SHARD_STATES.includes(shard.state)) return `${name} has state "${shard.state}"`;
  return undefined;
}

/** What is wrong with a map, or undefined: its slot ranges must cover every slot exactly once. */
export function mapProblem(map: ClusterMap): string | undefined {
  if (!isCount(map.version, 1)) return `version ${map.version} is not a positive integer`;
  if (map.shards.length === 0) return "the map has no shards";
  const ids = new Set<number>();
  for (const shard of map.shards) {
    const problem = shardProblem(shard);
    if (problem) return problem;
    if (ids.has(shard.shard)) return `shard ${shard.shard} appears twice`;
    ids.add(shard.shard);
  }
  let next = 0;
  for (const shard of [...map.shards].sort((a, b) => a.slots.from - b.slots.from)) {
    if (shard.slots.from < next) return `shard ${shard.shard} overlaps slot ${shard.slots.from}`;
    if (shard.slots.from > next) return `slots ${next}-${shard.slots.from - 1} have no shard`;
    next = shard.slots.to + 1;
  }
  if (next !== SLOT_COUNT) return `slots ${next}-${SLOT_COUNT - 1} have no shard`;
  return undefined;
}

export function assertValidMap(map: ClusterMap): ClusterMap {
  const problem = mapProblem(map);
  if (problem) throw new InvalidClusterMapError(`invalid cluster map: ${problem}`);
  return map;
}

/** The shard that holds `slot` in a valid map. */
export function ownerOf(map: ClusterMap, slot: number): ShardAssignment {
  const shard = Number.isInteger(slot) ? map.shards.find(({ slots }) => slots.from <= slot && slot <= slots.to) : undefined;
  if (!shard) throw new RangeError(`slot ${slot} is outside 0-${SLOT_COUNT - 1}`);
  return shard;
}

/**
 * The shards of a new cluster, all owned by its first node: one per slot range it already holds
 * (its data directory's manifest), so nothing is re-hashed. Epochs and version are stamped when
 * the map is written.
 */
/** A followers list as one string, the same whatever its order: how a shard file's list is compared with the map's. */
export function followersKey(followers: readonly string[]): string {
  return [...followers].sort().join(",");
}

export function firstNodeShards(node: string, ranges: readonly SlotRange[]): Omit<ShardAssignment, "epoch">[] {
  return ranges.map((slots, shard) => ({ shard, slots: { ...slots }, node, followers: [], state: "active" }));
}

export function topologyAnswer(map: ClusterMap, liveNodes: readonly LiveNode[]): TopologyAnswer {
  const urls = new Map(liveNodes.map(({ node, url }) => [node, url]));
  return {
    version: map.version,
    slots: SLOT_COUNT,
    shards: map.shards.map(({ shard, slots, node }) => ({ shard, slots, node, url: urls.get(node) ?? null })),
  };
}

/**
 * The moves after which every live node owns a fair share of the shards the live nodes hold:
 * ⌊n/k⌋ or ⌈n/k⌉ each. Shards of dead nodes stay put (their data is on the dead node: failover,
 * not a move, handles them), busy shards stay put, and the fewest moves win: the nodes that own
 * the most already keep the larger shares. Deterministic, so two coordinators plan alike.
 */
export function rebalancePlan(map: ClusterMap, liveNodes: readonly string[]): ShardMove[] {
  const nodes = [...new Set(liveNodes)].sort();
  if (nodes.length === 0) return [];
  const owned = new Map(nodes.map((node) => [node, [] as ShardAssignment[]]));
  for (const shard of map.shards) owned.get(shard.node)?.push(shard);
  const total = [...owned.values()].reduce((sum, shards) => sum + shards.length, 0);
  const base = Math.floor(total / nodes.length);
  const byLoad = [...nodes].sort((a, b) => owned.get(b)!.length - owned.get(a)!.length || a.localeCompare(b));
  const target = new Map(byLoad.map((node, index) => [node, base + (index < total % nodes.length ? 1 : 0)]));

  const donated = byLoad.flatMap((node) => {
    const excess = owned.get(node)!.length - target.get(node)!;
    const active = owned.get(node)!.filter((shard) => shard.state === "active");
    return active
      .sort((a, b) => b.shard - a.shard)
      .slice(0, Math.max(0, excess))
      .map((shard) => ({ shard: shard.shard, from: node }));
  });
  const receivers = nodes.flatMap((node) =>
    Array.from({ length: Math.max(0, target.get(node)! - owned.get(node)!.length) }, () => node),
  );
  return donated.slice(0, receivers.length).map((move, index) => ({ ...move, to: receivers[index]! }));
}
