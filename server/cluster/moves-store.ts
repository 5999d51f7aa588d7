import type { Namespace } from "etcd3";
import { CLUSTER_KEYS, modRevision } from "./etcd-client.js";

/** A move's steps in order; `aborted` may follow any step before `switched`. */
type MoveState = "copying" | "catching-up" | "frozen" | "switched" | "done" | "aborted";

/** What `moves/<id>` records, so a new coordinator can resume or abort a move. */
export interface MoveRecord {
  id: string;
  shard: number;
  from: string;
  to: string;
  state: MoveState;
}

/** A stored move record with the revision to compare against when it is next saved. */
export interface StoredMove {
  move: MoveRecord;
  revision: number;
}

/** A save lost its compare: the record changed (or appeared) since it was read. */
export class StaleMoveError extends Error {}

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

export async function listMoves(cluster: Namespace): Promise<StoredMove[]> {
  const response = await cluster.getAll().prefix(CLUSTER_KEYS.moves).exec();
  return response.kvs.map((kv) => ({ move: JSON.parse(kv.value.toString()) as MoveRecord, revision: modRevision(kv) }));
}
