import type { EntityRow, IdempotencyRow } from "../storage/tables.js";
import { entityJson, isLive } from "./entity.js";

/**
 * What a mutation did, as the store reports it and its idempotency record keeps it. The HTTP
 * layer derives its answer (status, `ETag`, `Location`) from this alone, so a replay answers
 * exactly what the first request was answered, whatever has happened to the entity since.
 */
export type WriteOutcome =
  | {
      kind: "created" | "updated";
      version: number;
      /** The entity's representation after the change, as JSON text. */
      representation: string;
      replayed: boolean;
    }
  | { kind: "deleted"; replayed: boolean };

/** What the write that saved `saved` did, given the row it found (`before`). */
export function outcomeOf(before: EntityRow | undefined, saved: EntityRow): WriteOutcome {
  if (!isLive(saved)) return { kind: "deleted", replayed: false };
  return {
    kind: isLive(before) ? "updated" : "created",
    version: saved.version,
    representation: entityJson(saved),
    replayed: false,
  };
}

/** The idempotency record of a write: the request's key and fingerprint, and what the write did. */
export function recordOf(
  saved: EntityRow,
  outcome: WriteOutcome,
  { key, fingerprint }: { key: string; fingerprint: string },
): IdempotencyRow {
  return {
    type: saved.type,
    id: saved.id,
    key,
    slot: saved.slot,
    sequence: saved.sequence,
    fingerprint,
    kind: outcome.kind,
    version: outcome.kind === "deleted" ? null : outcome.version,
    representation: outcome.kind === "deleted" ? null : outcome.representation,
    created_at: Date.now(),
  };
}

/** The one record → domain mapper: the outcome a replay answers with. */
export function recordedOutcome(row: IdempotencyRow): WriteOutcome {
  const { kind, version, representation } = row;
  // The table's CHECK constraint holds version and representation to NULL exactly for a delete.
  if (kind === "deleted" || version === null || representation === null) return { kind: "deleted", replayed: true };
  return { kind, version, representation, replayed: true };
}
