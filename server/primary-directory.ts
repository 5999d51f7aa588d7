import type { Logger } from "pino";
import { Registry } from "prom-client";
import type { ClusterNode } from "./cluster/cluster-node.js";
import type { ClusterConfig, ServeConfig } from "./config.js";
import { answerWorkerMetricsRequests } from "./metrics/cluster-metrics.js";
import { purgeMetrics } from "./metrics/purge-metrics.js";
import { failoverMetrics } from "./metrics/replication-metrics.js";
import { registerShardMetrics } from "./metrics/shard-metrics.js";
import type { ShardSet } from "./storage/data-directory.js";
import { IdempotencyPurger } from "./storage/idempotency-purger.js";
import { removeServerLock, writeServerLock } from "./storage/server-lock.js";
import { checkpointAll, markClosedCleanly, openShards } from "./shutdown.js";

/*
 * The primary's part in the data directory, loaded by serve.ts once the workers are forked:
 * the storage layer, SQLite and the metrics then load while the workers load their own code.
 */

/** The data directory as the primary of `apostate serve` holds it. */
export interface PrimaryDirectory {
  shards: ShardSet;
  /** A cluster node's membership; undefined on a node that runs on its own. */
  node: ClusterNode | undefined;
  /** Once every worker listens: the server lock names `url`, and the idempotency purge starts. */
  serving(url: string): void;
  /** Once every worker is gone: the purge stops, the node leaves its cluster, the shards close cleanly. */
  close(): Promise<void>;
}

/** A cluster node's primary: its data directory, opened as the cluster needs, and its membership. */
async function joinCluster(config: ServeConfig & { cluster: ClusterConfig }, logger: Logger, registry: Registry) {
  // Loaded only here: etcd's client costs a single-node start-up ~0.3 s it has no use for.
  const { ClusterNode } = await import("./cluster/cluster-node.js");
  const options = { ...config.cluster, adminToken: config.adminToken, logger, metrics: failoverMetrics(registry) };
  const shards = await openShards(config, true, { shardCount: (await ClusterNode.mapExists(options)) ? 0 : config.shards });
  try {
    return { shards, node: await ClusterNode.join(shards, options) };
  } catch (error) {
    shards.close();
    throw error;
  }
}

/**
 * Opens the data directory, verified once, read-only first, before any worker opens a file for
 * writing; on a cluster node, also joins the cluster. The primary keeps the shard gauges and
 * runs the idempotency purge, once for the whole server.
 */
export async function openPrimaryDirectory(config: ServeConfig, logger: Logger): Promise<PrimaryDirectory> {
  const registry = new Registry();
  const { shards, node } = config.cluster
    ? await joinCluster({ ...config, cluster: config.cluster }, logger, registry)
    : { shards: await openShards(config, true), node: undefined };
  registerShardMetrics(registry, shards);
  answerWorkerMetricsRequests(registry);
  const purger = new IdempotencyPurger(shards, config.idempotencyRetentionMs, logger, purgeMetrics(registry));
  return {
    shards,
    node,
    serving(url) {
      writeServerLock(shards.directory, url);
      purger.start();
    },
    async close() {
      await purger.stop();
      await node?.leave().catch((error: unknown) => logger.warn({ err: error }, "could not leave the cluster cleanly"));
      // The workers are gone: nothing reads the WALs any more, so they can be emptied completely.
      markClosedCleanly(shards, logger);
      checkpointAll(shards, "TRUNCATE", logger);
      shards.close();
      removeServerLock(shards.directory);
    },
  };
}
