import type { Migration } from "kysely";
import * as createShard from "./2026_11_26_000000_create_shard.js";
import * as shardTallies from "./2026_12_02_000000_shard_tallies.js";
import * as idempotencyOutcomes from "./2026_12_02_000100_idempotency_outcomes.js";
import * as shardFence from "./2026_12_02_000200_shard_fence.js";
import * as shardReplication from "./2026_12_03_000000_shard_replication.js";

/** Every shard migration, by name; the Migrator applies them in name order. */
export const migrations: Record<string, Migration> = {
  "2026_11_26_000000_create_shard": createShard,
  "2026_12_02_000000_shard_tallies": shardTallies,
  "2026_12_02_000100_idempotency_outcomes": idempotencyOutcomes,
  "2026_12_02_000200_shard_fence": shardFence,
  "2026_12_03_000000_shard_replication": shardReplication,
};
