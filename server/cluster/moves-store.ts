import { randomBytes } from "node:crypto";
import type { Namespace } from "etcd3";
import { CLUSTER_KEYS, modRevision } from "./etcd-client.js";
import { encodeMap, StaleMapError, type ShardPlacement } from "./map-store.js";
import type { ClusterMap, SlotRange } from "./topology.js";

/** A move's steps in order; `aborted` may follow any step before `switched`. */
export const MOVE_STATES = ["copying", "catching-up", "frozen", "switched", "done", "aborted"] as const;
export type MoveState = (typeof MOVE_STATES)[number];

/** What `moves/<id>` records, so a new coordinator can resume or abort a move. */
export interface MoveRecord {
  id: string;
  /** A move takes a shard to another node; a split gives the upper half of its slots to a new shard on the same node. */
  kind: "move" | "split";
  shard: number;
  /** The shard a split creates; null for a move. */
  newShard: number | null;
  /** The slots that travel: the whole shard for a move, the upper half for a split. */
  slots: SlotRange;
  from: string;
  to: string;
  state: MoveState;
  /** Why it was aborted, or what it waits for. */
  detail: string | null;
  /**
   * The source's sequence the target's copy was taken at, once copied: the copy arrived intact
   * (its Content-Digest), so the freeze's digests checksum only the rows written after it.
   * Absent in a record from before the copy (or from an older coordinator): every row is checked.
   */
  copiedAt?: number;
  createdAt: string;
  updatedAt: string;
}

/** A stored move record with the revision to compare against when it is next saved. */
export interface StoredMove {
  move: MoveRecord;
  revision: number;
}

/** A save lost its compare: the record changed (or appeared) since it was read. */
export class StaleMoveError extends Error {}

export function isFinished(move: MoveRecord): boolean {
  return move.state === "done" || move.state === "aborted";
}

/** A new id that sorts after every earlier one (time first), so moves run in the order they were asked for. */
export function newMoveId(now = Date.now()): string {
  return `m-${now.toString(36).padStart(9, "0")}-${randomBytes(3).toString("hex")}`;
}

/**
 * Saves a move record by compare-and-set: a new record (`revision` 0) only if none exists under
 * its id, an update only if the record is still at `revision`. Two coordinators can therefore
 * never both advance one move.
 */
export async function saveMove(cluster: Namespace, move: MoveRecord, revision: number): Promise<StoredMove> {
  const key = CLUSTER_KEYS.move(move.id);
  const result = await cluster
    .if(key, "Mod", "==", revision)
    .then(cluster.put(key).value(JSON.stringify(move)))
    .commit();
  if (!result.succeeded) throw new StaleMoveError(`move ${move.id} changed since revision ${revision}`);
  return { move, revision: Number(result.header.revision) };
}

/** Every recorded move, oldest first. */
export async function listMoves(cluster: Namespace): Promise<StoredMove[]> {
  const response = await cluster.getAll().prefix(CLUSTER_KEYS.moves).exec();
  return response.kvs
    .map((kv) => ({ move: JSON.parse(kv.value.toString()) as MoveRecord, revision: modRevision(kv) }))
    .sort((a, b) => a.move.id.localeCompare(b.move.id));
}

/**
 * Deletes the records of finished moves beyond the newest `keep`, so the records (which the
 * coordinator lists several times a second) stay few however many moves a cluster has run. A
 * record is deleted only while it is unchanged since it was listed. Resolves to how many were deleted.
 */
export async function pruneFinishedMoves(cluster: Namespace, moves: readonly StoredMove[], keep: number): Promise<number> {
  const finished = moves.filter(({ move }) => isFinished(move));
  const expired = finished.slice(0, Math.max(0, finished.length - keep));
  const results = await Promise.all(
    expired.map(({ move, revision }) => {
      const key = CLUSTER_KEYS.move(move.id);
      return cluster.if(key, "Mod", "==", revision).then(cluster.delete().key(key)).commit();
    }),
  );
  return results.filter((result) => result.succeeded).length;
}

export async function readMove(cluster: Namespace, id: string): Promise<StoredMove | undefined> {
  const response = await cluster.get(CLUSTER_KEYS.move(id)).exec();
  const kv = response.kvs[0];
  return kv && { move: JSON.parse(kv.value.toString()) as MoveRecord, revision: modRevision(kv) };
}

/**
 * Records new moves and the map that marks their shards busy in one etcd transaction, only if
 * the map is still at `previous.version`: a shard is never marked busy without its move, and two
 * operators asking at once cannot both start a move of one shard.
 */
export async function createMoves(
  cluster: Namespace,
  previous: ClusterMap,
  shards: readonly ShardPlacement[],
  moves: readonly MoveRecord[],
): Promise<void> {
  let compare = cluster.if(CLUSTER_KEYS.map, "Mod", "==", previous.version);
  for (const move of moves) compare = compare.and(CLUSTER_KEYS.move(move.id), "Create", "==", 0);
  const result = await compare
    .then(
      cluster.put(CLUSTER_KEYS.map).value(encodeMap(shards, previous)),
      ...moves.map((move) => cluster.put(CLUSTER_KEYS.move(move.id)).value(JSON.stringify(move))),
    )
    .commit();
  if (!result.succeeded) throw new StaleMapError(previous.version, undefined);
}
