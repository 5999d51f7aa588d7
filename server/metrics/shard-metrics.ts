import { Gauge, type Registry } from "prom-client";
import type { ShardSet } from "../storage/data-directory.js";
import type { ShardStats } from "../storage/shard-inspection.js";

type NumericStat = Exclude<keyof ShardStats, "lastWriteAt">;

const SHARD_GAUGES: Record<NumericStat, { name: string; help: string }> = {
  entities: { name: "apostate_shard_entities", help: "Live entities in the shard." },
  fileBytes: { name: "apostate_shard_file_bytes", help: "Size of the shard's database file." },
  walBytes: { name: "apostate_shard_wal_bytes", help: "Size of the shard's write-ahead log." },
  sequence: { name: "apostate_shard_sequence", help: "The shard's change sequence." },
  idempotencyRecords: { name: "apostate_shard_idempotency_records", help: "Idempotency records kept in the shard." },
};

/**
 * Per-shard gauges, read from the shard files at scrape time. They belong to one process only
 * (the cluster primary, or the single process of an in-process app): the files are shared, so
 * summing every worker's reading would count each shard once per worker.
 */
export function registerShardMetrics(registry: Registry, shards: ShardSet): void {
  const gauges = new Map<NumericStat, Gauge<"shard">>();
  const readShards = () => {
    for (const shard of shards.shards) {
      const stats = shard.stats();
      const labels = { shard: String(shard.placement.shard) };
      for (const [stat, gauge] of gauges) gauge.set(labels, stats[stat]);
    }
  };
  for (const [stat, { name, help }] of Object.entries(SHARD_GAUGES)) {
    // prom-client renders metrics in registration order and runs each collect synchronously
    // first, so the first gauge's collect reads each shard once and fills every gauge.
    const collect = gauges.size === 0 ? { collect: readShards } : {};
    gauges.set(stat as NumericStat, new Gauge({ name, help, labelNames: ["shard"], registers: [registry], ...collect }));
  }
}
