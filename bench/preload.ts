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
export const PRELOAD_SHARDS = 8;

export interface PreloadResult {
  entities: number;
  seconds: number;
  /** Shard files (after the WAL is checkpointed on close) divided by the entity count. */
  diskBytesPerEntity: number;
  /** The average length of an entity's data as JSON text. */
  jsonBytesPerEntity: number;
}

/** A shard that holds more entities than its share: the cluster bench moves one of a given size. */
export interface TopUp {
  shard: number;
  /** The entities the shard holds in the end, counting those of the first `count` that fall in it. */
  entities: number;
}

/**
 * Creates `dataDir` with `count` entities of {@link ENTITY_TYPE}, as version 1 of each; with
 * `topUp`, then adds the entities of the next indices whose slot falls in that shard until it
 * holds `topUp.entities`.
 */
export async function preload(dataDir: string, count: number, topUp?: TopUp): Promise<PreloadResult> {
  const started = performance.now();
  const shards = await openDataDirectory(dataDir, {
    shardCount: PRELOAD_SHARDS,
    durability: "process",
    busyTimeoutMs: 5000,
    verify: false,
  });
  const now = new Date().toISOString();
  const pending = new Map<Shard, EntityRow[]>();
  let jsonBytes = 0;
  let written = 0;
  let toppedUp = 0;
  const flush = (shard: Shard, rows: EntityRow[]) => {
    shard.write((tx) => {
      for (const row of rows) tx.saveEntity({ ...row, sequence: tx.nextSequence(now) }, undefined);
    });
    rows.length = 0;
  };
  const add = (index: number, shard: Shard, slot: number) => {
    const id = entityId(index);
    const data = JSON.stringify(entityData(index));
    jsonBytes += Buffer.byteLength(data);
    written += 1;
    if (shard.placement.shard === topUp?.shard) toppedUp += 1;
    const rows = pending.get(shard) ?? [];
    pending.set(shard, rows);
    rows.push({ type: ENTITY_TYPE, id, slot, version: 1, data, created_at: now, updated_at: now, sequence: 0 });
    if (rows.length >= ROWS_PER_TRANSACTION) flush(shard, rows);
  };
  try {
    for (let index = 0; index < count; index += 1) {
      const slot = slotOf(ENTITY_TYPE, entityId(index));
      add(index, shards.shardAt(slot), slot);
    }
    for (let index = count; topUp && toppedUp < topUp.entities; index += 1) {
      const slot = slotOf(ENTITY_TYPE, entityId(index));
      const shard = shards.shardAt(slot);
      if (shard.placement.shard === topUp.shard) add(index, shard, slot);
    }
    for (const [shard, rows] of pending) if (rows.length > 0) flush(shard, rows);
  } finally {
    shards.close();
  }
  return {
    entities: written,
    seconds: (performance.now() - started) / 1000,
    diskBytesPerEntity: dataDirectoryBytes(dataDir) / written,
    jsonBytesPerEntity: jsonBytes / written,
  };
}

export function dataDirectoryBytes(dataDir: string): number {
  return readdirSync(dataDir)
    .filter((file) => file.includes(".sqlite"))
    .reduce((total, file) => total + statSync(join(dataDir, file)).size, 0);
}
