import { slotOf } from "../../schema/placement.js";
import type { ShardSet } from "../storage/data-directory.js";
import type { Shard, ShardTransaction } from "../storage/shard.js";
import type { EntityRow, IdempotencyRow, ListedEntityRow } from "../storage/tables.js";
import { entityJson, isLive, parseData, rowToEntity, type LiveEntityRow } from "./entity.js";
import { ConditionFailedError, PatchConflictError, TestFailedError } from "../documents/document-errors.js";
import { EntityConflictError, EntityNotFoundError, IdempotencyKeyReusedError, VersionMismatchError } from "./errors.js";
import { applyJsonPatch } from "../documents/json-patch.js";
import { isJsonObject, type JsonObject, type JsonPatchOperation, type OpsRequest } from "../documents/json-value.js";
import { ListCursorCodec } from "./list-cursor.js";
import { mergeById } from "./merge-by-id.js";
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

export interface ListOptions {
  prefix: string;
  limit: number;
  cursor?: string;
}

/** A listed entity's representation (JSON text) with its id, the merge key. */
export interface ListedItem {
  id: string;
  json: string;
}

export interface StoreOptions {
  /** Signs list cursors (hex); the nodes of a cluster share one, so any node continues any node's list. */
  cursorSecret?: string;
  /** The shards a list reads, when not all the open ones: a cluster node lists only those the map gives it. */
  listedShards?: () => readonly Shard[];
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

  constructor(
    private readonly shards: ShardSet,
    private readonly options: StoreOptions = {},
  ) {
    this.cursors = new ListCursorCodec(options.cursorSecret ?? shards.manifest.cursorSecret);
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
  list(type: string, options: ListOptions): ListPage {
    const page = this.page(type, options);
    const last = page.items.at(-1);
    return {
      items: page.items.map((item) => item.json),
      nextCursor: page.more && last ? this.cursorAfter(type, options.prefix, last.id) : null,
    };
  }

  /** {@link EntityStore.list}'s page with each item's id, for a caller that merges it with other pages. */
  page(type: string, options: ListOptions): { items: ListedItem[]; more: boolean } {
    const after = options.cursor === undefined ? "" : this.cursors.decode(options.cursor, { type, prefix: options.prefix });
    const range = { type, after, prefix: options.prefix, limit: options.limit + 1 };
    const shards = this.options.listedShards?.() ?? this.shards.shards;
    const runs = shards.map((shard) => shard.iterateEntities(range));
    let rows: ListedEntityRow[];
    try {
      rows = mergeById(runs, range.limit);
    } finally {
      for (const run of runs) run.return();
    }
    // A split by another process of the node may have moved rows out from under these reads.
    for (const shard of shards) shard.assertRangeCurrent();
    return {
      items: rows.slice(0, options.limit).map((row) => ({ id: row.id, json: entityJson(row) })),
      more: rows.length > options.limit,
    };
  }

  /** The cursor of the page that continues after `id`. */
  cursorAfter(type: string, prefix: string, id: string): string {
    return this.cursors.encode({ type, prefix, after: id });
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
    // On a replicated shard the record may not have reached the followers yet: the write queue's
    // batch, which a replay below also goes through, reaches them before it answers.
    const committed = idempotency && !shard.replicated && shard.readIdempotency(type, id, idempotency.key);
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
