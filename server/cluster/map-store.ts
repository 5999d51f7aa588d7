import type { Namespace } from "etcd3";
import { CLUSTER_KEYS, modRevision } from "./etcd-client.js";
import { assertValidMap, InvalidClusterMapError, type ClusterMap, type ShardAssignment } from "./topology.js";

/**
 * A shard as a change describes it. The epoch is not the change's to choose, except for a
 * failover's: it fences the followers at an epoch before the map names the new owner, so it
 * sets that epoch itself (a revision above every earlier one, see MoveRunner's failover).
 */
export type ShardPlacement = Omit<ShardAssignment, "epoch"> & { failoverEpoch?: number };

/**
 * The map as stored under `map`. Its version is the key's mod revision, and an epoch of null
 * means "the revision of this very write", which is unknown until etcd commits it.
 */
interface StoredMap {
  shards: (Omit<ShardAssignment, "epoch"> & { epoch: number | null })[];
}

/** A compare-and-set of the map lost: it changed since `expected` was read. */
export class StaleMapError extends Error {
  constructor(
    readonly expected: number,
    readonly current: number | undefined,
  ) {
    super(`the cluster map is at version ${current ?? "(none)"}, not ${expected}`);
  }
}

/** The map of a cluster whose map should exist but does not. */
export class MissingMapError extends Error {}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null;

/** The stored form's shape; `assertValidMap` then checks what the values mean. */
function isStoredMap(value: unknown): value is StoredMap {
  return (
    isObject(value) &&
    Array.isArray(value.shards) &&
    value.shards.every(
      (shard: unknown) =>
        isObject(shard) &&
        typeof shard.shard === "number" &&
        isObject(shard.slots) &&
        typeof shard.slots.from === "number" &&
        typeof shard.slots.to === "number" &&
        typeof shard.node === "string" &&
        Array.isArray(shard.followers) &&
        shard.followers.every((follower: unknown) => typeof follower === "string") &&
        (shard.epoch === null || typeof shard.epoch === "number") &&
        typeof shard.state === "string",
    )
  );
}

/** The map stored at revision `version`; `InvalidClusterMapError` when it is not a valid map. */
export function decodeMap(value: string, version: number): ClusterMap {
  let stored: unknown;
  try {
    stored = JSON.parse(value);
  } catch (error) {
    throw new InvalidClusterMapError("invalid cluster map: not JSON", { cause: error });
  }
  if (!isStoredMap(stored)) throw new InvalidClusterMapError("invalid cluster map: not a map of shards");
  return assertValidMap({
    version,
    shards: stored.shards.map(({ shard, slots, node, followers, epoch, state }) => ({
      shard,
      slots: { from: slots.from, to: slots.to },
      node,
      followers,
      epoch: epoch ?? version,
      state,
    })),
  });
}

/**
 * A shard keeps its epoch while its owner stays; a new owner (or a new shard) takes the revision
 * of this write. The result is checked as a map before anything is written.
 */
export function encodeMap(shards: readonly ShardPlacement[], previous: ClusterMap | undefined): string {
  const before = new Map(previous?.shards.map((shard) => [shard.shard, shard]));
  const stored: StoredMap = {
    shards: shards.map(({ shard, slots, node, followers, state, failoverEpoch }) => {
      const kept = before.get(shard);
      if (failoverEpoch !== undefined && kept && failoverEpoch <= kept.epoch) {
        throw new InvalidClusterMapError(
          `invalid cluster map: shard ${shard}'s epoch ${failoverEpoch} is not above ${kept.epoch}`,
        );
      }
      return { shard, slots, node, followers, epoch: failoverEpoch ?? (kept?.node === node ? kept.epoch : null), state };
    }),
  };
  const nextVersion = (previous?.version ?? 0) + 1;
  decodeMap(JSON.stringify(stored), nextVersion);
  return JSON.stringify(stored);
}

export async function readMap(cluster: Namespace): Promise<ClusterMap | undefined> {
  const response = await cluster.get(CLUSTER_KEYS.map).exec();
  const kv = response.kvs[0];
  return kv && decodeMap(kv.value.toString(), modRevision(kv));
}

/**
 * Creates the map with `shards` unless the cluster already has one; resolves to the map that
 * holds either way, so exactly one of several nodes starting at once creates it.
 */
export async function createMapIfAbsent(cluster: Namespace, shards: readonly ShardPlacement[]): Promise<ClusterMap> {
  const value = encodeMap(shards, undefined);
  const result = await cluster
    .if(CLUSTER_KEYS.map, "Create", "==", 0)
    .then(cluster.put(CLUSTER_KEYS.map).value(value))
    .else(cluster.get(CLUSTER_KEYS.map))
    .commit();
  if (result.succeeded) return decodeMap(value, Number(result.header.revision));
  const kv = result.responses[0]?.response_range.kvs[0];
  if (!kv) throw new MissingMapError("the cluster map vanished while it was being created");
  return decodeMap(kv.value.toString(), modRevision(kv));
}

/**
 * Writes `shards` as the successor of `previous`, only if the map is still at `previous.version`
 * (a compare on its mod revision); a stale writer gets `StaleMapError` and changes nothing.
 */
export async function writeMap(cluster: Namespace, previous: ClusterMap, shards: readonly ShardPlacement[]): Promise<ClusterMap> {
  const value = encodeMap(shards, previous);
  const result = await cluster
    .if(CLUSTER_KEYS.map, "Mod", "==", previous.version)
    .then(cluster.put(CLUSTER_KEYS.map).value(value))
    .else(cluster.get(CLUSTER_KEYS.map))
    .commit();
  if (result.succeeded) return decodeMap(value, Number(result.header.revision));
  const kv = result.responses[0]?.response_range.kvs[0];
  throw new StaleMapError(previous.version, kv && modRevision(kv));
}

/** Enough for every node of a large cluster changing the map at the same moment. */
const UPDATE_ATTEMPTS = 100;

/** What to do to the map: the new shards, or undefined when there is nothing to change. */
export type MapChange = (current: ClusterMap) => readonly ShardPlacement[] | undefined;

/**
 * Reads the map, applies `change` (pure: it may run several times) and writes the result by
 * compare-and-set, reading again and re-applying on each conflict. Resolves to the map written,
 * or to the current map when `change` had nothing to change.
 */
export async function updateMap(cluster: Namespace, change: MapChange): Promise<ClusterMap> {
  for (let attempt = 1; ; attempt++) {
    const current = await readMap(cluster);
    if (!current) throw new MissingMapError("the cluster has no map yet");
    const shards = change(current);
    if (shards === undefined) return current;
    try {
      return await writeMap(cluster, current, shards);
    } catch (error) {
      if (!(error instanceof StaleMapError) || attempt >= UPDATE_ATTEMPTS) throw error;
    }
  }
}

/** The map's shards as a change takes them: everything but the epochs, copied so a change can edit them. */
export function placementsOf(map: ClusterMap): ShardPlacement[] {
  return map.shards.map(({ shard, slots, node, followers, state }) => ({ shard, slots: { ...slots }, node, followers, state }));
}
