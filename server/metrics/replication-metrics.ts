import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** What a worker's replicator reports (see Replicator). */
export interface ReplicationListener {
  /** A shipment reached every follower it needed, after `seconds`. */
  shipped(shard: number, seconds: number): void;
  /** A shipment failed: its writes answered 503. */
  failed(shard: number): void;
  /** A follower acknowledged: it is `sequences` behind what this worker has committed and shipped since. */
  lag(shard: number, follower: string, sequences: number): void;
}

/** What the coordinator reports (see ReplicaKeeper). */
export interface FailoverListener {
  failedOver(shard: number): void;
  followerAdded(shard: number): void;
}

export function replicationMetrics(registry: Registry): ReplicationListener {
  const seconds = new Histogram({
    name: "apostate_replication_seconds",
    help: "Time from a batch's commit on its owner to every follower's acknowledgement.",
    labelNames: ["shard"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const batches = new Counter({
    name: "apostate_replication_batches_total",
    help: "Shipments of committed batches to followers, by outcome (failed: the writes answered 503).",
    labelNames: ["shard", "outcome"],
    registers: [registry],
  });
  const lag = new Gauge({
    name: "apostate_replication_lag_sequences",
    help: "How many sequences a follower was behind its owner's commits at its last acknowledgement.",
    labelNames: ["shard", "follower"],
    registers: [registry],
    // Every worker of the owner ships; the furthest behind is the follower's lag.
    aggregator: "max",
  });
  return {
    shipped(shard, elapsed) {
      seconds.observe({ shard: String(shard) }, elapsed);
      batches.inc({ shard: String(shard), outcome: "shipped" });
    },
    failed(shard) {
      batches.inc({ shard: String(shard), outcome: "failed" });
    },
    lag(shard, follower, sequences) {
      lag.set({ shard: String(shard), follower }, sequences);
    },
  };
}

export function failoverMetrics(registry: Registry): FailoverListener {
  const failovers = new Counter({
    name: "apostate_failovers_total",
    help: "Shards this node, as coordinator, promoted a follower of because their owner's lease was gone.",
    labelNames: ["shard"],
    registers: [registry],
  });
  const added = new Counter({
    name: "apostate_followers_added_total",
    help: "Followers this node, as coordinator, seeded and added to a shard.",
    labelNames: ["shard"],
    registers: [registry],
  });
  return {
    failedOver: (shard) => failovers.inc({ shard: String(shard) }),
    followerAdded: (shard) => added.inc({ shard: String(shard) }),
  };
}
