import { Counter, type Registry } from "prom-client";
import type { PurgeListener } from "../storage/idempotency-purger.js";

/** Counts what the idempotency purge deletes, per shard, and how many batches it took. */
export function purgeMetrics(registry: Registry): PurgeListener {
  const purged = new Counter({
    name: "apostate_idempotency_purged_total",
    help: "Expired idempotency records deleted by the background purge.",
    labelNames: ["shard"],
    registers: [registry],
  });
  const batches = new Counter({
    name: "apostate_idempotency_purge_batches_total",
    help: "Batches (one short write transaction each) the background purge has run.",
    labelNames: ["shard"],
    registers: [registry],
  });
  return (shard, deleted) => {
    const labels = { shard: String(shard) };
    batches.inc(labels);
    purged.inc(labels, deleted);
  };
}
