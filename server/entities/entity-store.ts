import { slotOf } from "../../schema/placement.js";
import type { ShardSet } from "../storage/data-directory.js";
import type { ShardTransaction } from "../storage/shard.js";
import type { EntityRow, IdempotencyRow, ListedEntityRow } from "../storage/tables.js";
import { entityJson, isLive, parseData, rowToEntity, type LiveEntityRow } from "./entity.js";
import { ConditionFailedError, PatchConflictError, TestFailedError } from "../documents/document-errors.js";
import { EntityConflictError, EntityNotFoundError, IdempotencyKeyReusedError, VersionMismatchError } from "./errors.js";
import { applyJsonPatch } from "../documents/json-patch.js";
import { isJsonObject, type JsonObject, type JsonPatchOperation, type OpsRequest } from "../documents/json-value.js";
import { ListCursorCodec } from "./list-cursor.js";
import { applyMergePatch } from "../documents/merge-patch.js";
import { applyOps } from "../documents/ops.js";
import { preconditionsHold, type Preconditions } from "./preconditions.js";
import { outcomeOf, recordedOutcome, recordOf, type WriteOutcome } from "./write-outcome.js";

/** The caller's idempotency key and the fingerprint of the request that carries it. */
export interface Idempotency {
  key: string;
  fingerprint: string;
  /**
   * The request's fingerprint as records of the first schema hold it (a SHA-256 of its parts and
   * path), worked out only for a record that does not match `fingerprint`, so that a retry
   * which spans the upgrade is still replayed.
   */
  formerFingerprint?: () => string;
}

export interface Mutation {
  type: string;
  id: string;
  preconditions: Preconditions;
  idempotency?: Idempotency;
}

export interface ListPage {
  items: string[];
  nextCursor: string | null;
}

/** What a mutation does to the entity it finds: new data, or a delete. */
type Change = { data: JsonObject } | { delete: true };

/**
 * The data plane's rules: single-entity reads and atomic writes with preconditions and
 * exactly-once idempotency. Each write runs in one transaction of the entity's shard, in which
 * the idempotency record is read first and written last.
 */
export class EntityStore {
  private readonly cursors: ListCursorCodec;

  constructor(private readonly shards: ShardSet) {
    this.cursors = new ListCursorCodec(shards.manifest.cursorSecret);
  }

  /** The entity's row, or EntityNotFoundError. */
  get(type: string, id: string): LiveEntityRow {
    const row = this.shards.shardFor(type, id).readEntity(type, id);
    if (!isLive(row)) throw new EntityNotFoundError(`${type}/${id} does not exist`);
    return row;
  }

  put(mutation: Mutation, data: JsonObject): Promise<WriteOutcome> {
    return this.mutate(mutation, () => ({ data }));
  }

  mergePatch(mutation: Mutation, patch: JsonObject): Promise<WriteOutcome> {
    return this.mutate(mutation, (row) => ({ data: applyMergePatch(parseData(requireLive(mutation, row)), patch) }));
  }

  jsonPatch(mutation: Mutation, patch: JsonPatchOperation[]): Promise<WriteOutcome> {
    return this.mutate(mutation, (row) => ({ data: applyJsonPatch(parseData(requireLive(mutation, row)), patch) }));
  }

  ops(mutation: Mutation, request: OpsRequest): Promise<WriteOutcome> {
    return this.mutate(mutation, (row) => {
      const data = isLive(row) || !request.upsert ? parseData(requireLive(mutation, row)) : {};
      return { data: applyOps(data, request) };
    });
  }

  delete(mutation: Mutation): Promise<WriteOutcome> {
    return this.mutate(mutation, (row) => {
      requireLive(mutation, row);
      return { delete: true };
    });
  }

  /**
   * One page of a type's entities in id order, merged across every shard. The merge pulls rows
   * from the shards lazily, so a page reads about `limit + shards` rows, not `limit` from each;
   * row `limit + 1` only says whether another page exists.
   */
  list(type: string, options: { prefix: string; limit: number; cursor?: string }): ListPage {
    const after = options.cursor === undefined ? "" : this.cursors.decode(options.cursor, { type, prefix: options.prefix });
    const range = { type, after, prefix: options.prefix, limit: options.limit + 1 };
    const runs = this.shards.shards.map((shard) => shard.iterateEntities(range));
    let rows: ListedEntityRow[];
    try {
      rows = mergeById(runs, range.limit);
    } finally {
      for (const run of runs) run.return();
    }
    const page = rows.slice(0, options.limit);
    const last = page.at(-1);
    return {
      items: page.map(entityJson),
      nextCursor:
        rows.length > options.limit && last ? this.cursors.encode({ type, prefix: options.prefix, after: last.id }) : null,
    };
  }

  /**
   * Resolves once the change (and its idempotency record) has committed; the shard may commit it
   * together with other writes (group commit), each in a savepoint of its own.
   */
  private async mutate(mutation: Mutation, change: (row: EntityRow | undefined) => Change): Promise<WriteOutcome> {
    const { type, id, idempotency } = mutation;
    const slot = slotOf(type, id);
    const shard = this.shards.shardAt(slot);
    // A committed record never changes, so a retry that finds one is answered without taking
    // the shard's write lock. Finding none proves nothing (the first request may be committing
    // right now): the transaction below looks again, under the lock.
    const committed = idempotency && shard.readIdempotency(type, id, idempotency.key);
    if (committed) return replay(mutation, committed);
    return shard.commitWrite((tx) => {
      if (idempotency) {
        const recorded = tx.readIdempotency(type, id, idempotency.key);
        if (recorded) return replay(mutation, recorded);
      }
      const row = tx.readEntity(type, id);
      if (!preconditionsHold(mutation.preconditions, row)) {
        throw new VersionMismatchError(isLive(row) ? rowToEntity(row) : null);
      }
      const saved = save(tx, { type, id, slot }, row, applyChange(change, row));
      const outcome = outcomeOf(row, saved);
      if (idempotency) tx.recordIdempotency(recordOf(saved, outcome, idempotency));
      return outcome;
    });
  }
}

/** Saves the entity's next row, which takes the shard's next change sequence; returns it. */
function save(
  tx: ShardTransaction,
  { type, id, slot }: { type: string; id: string; slot: number },
  row: EntityRow | undefined,
  change: Change,
): EntityRow {
  const now = new Date().toISOString();
  const sequence = tx.nextSequence(now);
  const next: EntityRow = {
    type,
    id,
    slot,
    version: (row?.version ?? 0) + 1,
    data: "delete" in change ? null : JSON.stringify(change.data),
    created_at: isLive(row) ? row.created_at : now,
    updated_at: now,
    sequence,
  };
  tx.saveEntity(next, row);
  return next;
}

/**
 * The first `count` rows of sorted runs, in id order. Ids are ASCII, so JS string order is
 * SQLite's byte order; with a handful of shards, scanning the heads beats a heap.
 */
function mergeById<Row extends { id: string }>(runs: Iterator<Row>[], count: number): Row[] {
  const heads = runs.map((run) => run.next());
  const merged: Row[] = [];
  while (merged.length < count) {
    let smallest = -1;
    heads.forEach((head, i) => {
      if (!head.done && (smallest < 0 || head.value.id < (heads[smallest]!.value as Row).id)) smallest = i;
    });
    if (smallest < 0) break;
    merged.push(heads[smallest]!.value as Row);
    heads[smallest] = runs[smallest]!.next();
  }
  return merged;
}

/** The recorded outcome of the request `mutation` repeats, or 422 when the key named another request. */
function replay({ type, id, idempotency }: Mutation, recorded: IdempotencyRow): WriteOutcome {
  if (recorded.fingerprint !== idempotency?.fingerprint && recorded.fingerprint !== idempotency?.formerFingerprint?.()) {
    throw new IdempotencyKeyReusedError(`the key was used on ${type}/${id} for another request`);
  }
  return recordedOutcome(recorded);
}

function requireLive(mutation: Mutation, row: EntityRow | undefined): LiveEntityRow {
  if (!isLive(row)) throw new EntityNotFoundError(`${mutation.type}/${mutation.id} does not exist`);
  return row;
}

/** Runs the change; a document-level failure is bound to the entity it was tried on. */
function applyChange(change: (row: EntityRow | undefined) => Change, row: EntityRow | undefined): Change {
  try {
    const result = change(row);
    if ("data" in result && !isJsonObject(result.data)) {
      throw new PatchConflictError("the result is not a JSON object");
    }
    return result;
  } catch (error) {
    if (error instanceof TestFailedError || error instanceof PatchConflictError || error instanceof ConditionFailedError) {
      throw new EntityConflictError(error, isLive(row) ? rowToEntity(row) : null);
    }
    throw error;
  }
}
