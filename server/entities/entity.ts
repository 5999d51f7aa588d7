import type { components } from "../../client/generated/openapi.js";
import type { EntityRow, ListedEntityRow } from "../storage/tables.js";
import type { JsonObject } from "../documents/json-value.js";

export type Entity = components["schemas"]["Entity"];

/** A row that holds a live entity (not a tombstone). */
export type LiveEntityRow = EntityRow & { data: string };

export function isLive(row: EntityRow | undefined): row is LiveEntityRow {
  return row !== undefined && row.data !== null;
}

/**
 * The one row → representation mapper. The stored data is already JSON text, so the
 * representation is assembled around it rather than parsed and serialised again.
 */
export function entityJson(row: ListedEntityRow): string {
  return `{"type":${JSON.stringify(row.type)},"id":${JSON.stringify(row.id)},"version":${row.version},"data":${row.data},"createdAt":"${row.created_at}","updatedAt":"${row.updated_at}"}`;
}

export function rowToEntity(row: LiveEntityRow): Entity {
  return {
    type: row.type,
    id: row.id,
    version: row.version,
    data: parseData(row),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** A fresh, mutable copy of the entity's data. */
export function parseData(row: LiveEntityRow): JsonObject {
  return JSON.parse(row.data) as JsonObject;
}
