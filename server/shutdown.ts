import type { Logger } from "pino";
import type { ServeConfig } from "./config.js";
import { openDataDirectory, type ShardSet } from "./storage/data-directory.js";
import type { BatchShipper, ShardOptions, WriteGuard } from "./storage/shard.js";

/*
 * What the primary and the workers of `apostate serve` share, kept apart from both so that the
 * primary loads none of the workers' HTTP modules.
 */

/**
 * Opens the data directory. A cluster node's directory records its cluster and node; a node that
 * joins a cluster that has a map already starts with no shards (`shardCount` 0), and its workers
 * fence every write with `guard`. A worker stops when an fsync of a WAL fails (`onWalSyncFailure`).
 */
export async function openShards(
  config: ServeConfig,
  verify: boolean,
  options: {
    shardCount?: number;
    guard?: WriteGuard;
    ship?: BatchShipper;
    onWalSyncFailure?: ShardOptions["onWalSyncFailure"];
  } = {},
): Promise<ShardSet> {
  return openDataDirectory(config.dataDir, {
    shardCount: options.shardCount ?? config.shards,
    durability: config.durability,
    busyTimeoutMs: config.busyTimeoutMs,
    verify,
    ...(config.cluster && { member: { cluster: config.cluster.cluster, node: config.cluster.node } }),
    ...(options.guard && { guard: options.guard }),
    ...(options.ship && { ship: options.ship }),
    onWalSyncFailure: options.onWalSyncFailure,
  });
}

/** Records in each shard that nothing writes to it any more, so the next start-up can trust it. */
export function markClosedCleanly(shards: ShardSet, logger: Logger): void {
  for (const shard of shards.shards) {
    try {
      shard.markClosedCleanly();
    } catch (error) {
      logger.warn({ err: error, shard: shard.placement.shard }, "could not record a clean close");
    }
  }
}

/**
 * Checkpoints every shard's WAL; a shard another process still reads is skipped with a warning
 * (SQLite finishes the job later), so shutdown never fails on it.
 */
export function checkpointAll(shards: ShardSet, mode: "PASSIVE" | "TRUNCATE", logger: Logger): void {
  for (const shard of shards.shards) {
    try {
      shard.checkpoint(mode);
    } catch (error) {
      logger.warn({ err: error, shard: shard.placement.shard, mode }, "checkpoint skipped");
    }
  }
}
