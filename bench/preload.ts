import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { slotOf } from "../schema/placement.js";
import { openDataDirectory } from "../server/storage/data-directory.js";
import type { Shard } from "../server/storage/shard.js";
import type { EntityRow } from "../server/storage/tables.js";
import { ENTITY_TYPE, entityData, entityId } from "./workload.js";

/*
 * Rows are written straight through the storage layer, many per transaction: over HTTP,
 * a million entities would take minutes of one-transaction-per-request writes before the
 * benchmark could even start.
 */
const ROWS_PER_TRANSACTION = 5_000;

export interface PreloadResult {
  entities: number;
  seconds: number;
  /** Shard files (after the WAL is checkpointed on close) divided by the entity count. */
  diskBytesPerEntity: number;
  /** The average length of an entity's data as JSON text. */
  jsonBytesPerEntity: number;
}

/** Creates `dataDir` with `count` entities of {@link ENTITY_TYPE}, as version 1 of each. */
export async function preload(dataDir: string, count: number): Promise<PreloadResult> {
  const started = performance.now();
  const shards = await openDataDirectory(dataDir, { shardCount: 8, durability: "process", busyTimeoutMs: 5000, verify: false });
  const now = new Date().toISOString();
  const pending = new Map<Shard, EntityRow[]>();
  let jsonBytes = 0;
  const flush = (shard: Shard, rows: EntityRow[]) => {
    shard.write((tx) => {
      for (const row of rows) tx.saveEntity({ ...row, sequence: tx.nextSequence(now) }, undefined);
    });
    rows.length = 0;
  };
  try {
    for (let index = 0; index < count; index += 1) {
      const id = entityId(index);
      const slot = slotOf(ENTITY_TYPE, id);
      const data = JSON.stringify(entityData(index));
      jsonBytes += Buffer.byteLength(data);
      const shard = shards.shardAt(slot);
      const rows = pending.get(shard) ?? [];
      pending.set(shard, rows);
      rows.push({ type: ENTITY_TYPE, id, slot, version: 1, data, created_at: now, updated_at: now, sequence: 0 });
      if (rows.length >= ROWS_PER_TRANSACTION) flush(shard, rows);
    }
    for (const [shard, rows] of pending) if (rows.length > 0) flush(shard, rows);
  } finally {
    shards.close();
  }
  return {
    entities: count,
    seconds: (performance.now() - started) / 1000,
    diskBytesPerEntity: dataDirectoryBytes(dataDir) / count,
    jsonBytesPerEntity: jsonBytes / count,
  };
}

export function dataDirectoryBytes(dataDir: string): number {
  return readdirSync(dataDir)
    .filter((file) => file.includes(".sqlite"))
    .reduce((total, file) => total + statSync(join(dataDir, file)).size, 0);
}
