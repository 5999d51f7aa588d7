import { createServer, type Server } from "node:http";
import type { Logger } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { createApp } from "./app.js";
import type { CodeCacheState } from "./code-cache.js";
import {
  CLUSTER_SNAPSHOT_REQUEST,
  ClusterState,
  isClusterSnapshotMessage,
  type ClusterSnapshot,
} from "./cluster/cluster-state.js";
import type { ShardAssignment } from "./cluster/topology.js";
import type { ClusterConfig, ServeConfig } from "./config.js";
import type { ClusterOperations } from "./http/cluster-routes.js";
import type { ShardSet } from "./storage/data-directory.js";
import type { BatchShipper, WriteGuard } from "./storage/shard.js";
import { ShardFrozenError, ShardNotHereError } from "./storage/storage-errors.js";
import type { Replicator } from "./cluster/replicator.js";
import { EntityStore } from "./entities/entity-store.js";
import { createLogger } from "./logger.js";
import { workerMetrics } from "./metrics/cluster-metrics.js";
import { replicationMetrics, type ReplicationListener } from "./metrics/replication-metrics.js";
import { checkpointAll, openShards } from "./shutdown.js";
import { DRAIN_MS, forkedWorkerConfig, primaryGoAhead, SHUTDOWN_MESSAGE, WAL_SYNC_FAILED_EXIT_CODE } from "./worker-protocol.js";

/** How often a draining worker closes keep-alive connections that have gone idle. */
const IDLE_SWEEP_MS = 50;

/**
 * A worker of `apostate serve`, forked by the primary (see serve.ts): waits for the primary's
 * go-ahead, opens the shards, serves HTTP, drains on the primary's request. Resolves once it
 * listens; `codeCache` says whether its code came compiled from V8's code cache (worker-entry.ts).
 */
export async function runWorker(codeCache?: CodeCacheState): Promise<void> {
  const config = forkedWorkerConfig();
  const logger = createLogger();
  if (codeCache) logger.debug({ codeCache }, "worker code loaded");
  // Listen for the stop request before anything else: it may come while the shards still open.
  let stopping = false;
  // Before the go-ahead nothing is open; once it came, a stop waits until the server listens.
  let finishStop: (() => void) | undefined = () => process.exit(0);
  const requestStop = () => {
    if (stopping) return;
    stopping = true;
    finishStop?.();
  };
  let signals = 0;
  const onSignal = () => {
    signals += 1;
    if (signals > 1) process.exit(1);
    requestStop();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  process.on("message", (message: unknown) => {
    if (message === SHUTDOWN_MESSAGE) requestStop();
  });

  await primaryGoAhead();
  finishStop = undefined;
  const membership = config.cluster && followCluster(config, logger);
  const shards = await openShards(config, false, {
    ...(membership && { guard: membership.guard, ship: membership.ship }),
    onWalSyncFailure: (error) => {
      // Exit before any write of the batch is answered: its clients see the connection close and
      // retry with their Idempotency-Key, which the restarted server replays.
      logger.fatal({ err: error }, "an fsync of a shard's WAL failed: stopping without answering");
      process.exit(WAL_SYNC_FAILED_EXIT_CODE);
    },
  });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const cluster =
    membership && config.cluster ? await membership.start(shards, config.cluster, replicationMetrics(registry)) : undefined;
  const app = await createApp({
    store: new EntityStore(
      shards,
      cluster && {
        cursorSecret: cluster.state.snapshot.cursorSecret,
        listedShards: () => cluster.state.ownShards().flatMap((assignment) => shards.get(assignment.shard) ?? []),
      },
    ),
    ...(cluster && { cluster }),
    shards,
    logger,
    bodyLimit: config.bodyLimit,
    requestLogging: config.logRequests,
    token: config.token,
    adminToken: config.adminToken,
    registry,
    metricsSource: workerMetrics(registry),
    isStopping: () => stopping,
  });
  const server = createServer(app).listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });

  finishStop = () => {
    void drain(server, logger).then(() => {
      // PASSIVE: the other workers may still be finishing; the primary empties the WAL last.
      checkpointAll(shards, "PASSIVE", logger);
      shards.close();
      process.exit(0);
    });
  };
  if (stopping) finishStop();
}

/**
 * A worker's part in its node's cluster: it asks its primary for the cluster's snapshot and
 * follows every later one. A snapshot that changes which shards the node holds is applied to the
 * open shards first (the primary has changed the data directory already), then to the map the
 * requests are routed by. Until the first snapshot, every write is refused by the fence.
 */
function followCluster(config: ServeConfig, logger: Logger) {
  let state: ClusterState | undefined;
  let latest: ClusterSnapshot | undefined;
  let applying = Promise.resolve();
  let shardSet: ShardSet | undefined;
  let resolveFirst: (snapshot: ClusterSnapshot) => void = () => {};
  const first = new Promise<ClusterSnapshot>((resolve) => (resolveFirst = resolve));
  process.on("message", (message: unknown) => {
    if (!isClusterSnapshotMessage(message)) return;
    latest = message.snapshot;
    resolveFirst(latest);
    const following = state;
    const shards = shardSet;
    if (!following || !shards) return;
    applying = applying.then(async () => {
      await shards.reload();
      if (!latest) return;
      const before = following.ownShards();
      following.update(latest);
      syncNewFollowers(shards, before, following.ownShards(), logger);
    });
  });
  process.send?.(CLUSTER_SNAPSHOT_REQUEST);
  const guard: WriteGuard = (placement, fence) => {
    if (!state) throw new ShardFrozenError("this worker has no cluster map yet");
    state.guard(placement, fence);
  };
  let replicator: Replicator | undefined;
  const ship: BatchShipper = (batch) =>
    replicator ? replicator.ship(batch) : Promise.reject(new ShardFrozenError("this worker has no cluster map yet"));
  return {
    guard,
    ship,
    async start(
      shards: ShardSet,
      cluster: ClusterConfig,
      metrics: ReplicationListener,
    ): Promise<{ state: ClusterState; admin: ClusterOperations }> {
      shardSet = shards;
      const followed = new ClusterState(await first);
      // The primary may have changed the data directory between opening it and this snapshot.
      await shards.reload();
      followed.update(latest ?? followed.snapshot);
      state = followed;
      const { ClusterAdmin } = await import("./cluster/cluster-admin.js");
      const { Replicator } = await import("./cluster/replicator.js");
      const joined = new ClusterAdmin({ etcd: cluster.etcd, cluster: cluster.cluster, adminToken: config.adminToken }, followed);
      replicator = await Replicator.create({
        state: () => state,
        changesAfter: (shard, after, limit) => {
          const found = shards.get(shard);
          if (!found) throw new ShardNotHereError(`this node holds no shard ${shard}`);
          return found.changesAfter(after, limit, { indexed: false });
        },
        dropFollower: (shard, follower, epoch) => joined.dropFollower(shard, follower, epoch),
        adminToken: config.adminToken,
        busyTimeoutMs: config.busyTimeoutMs,
        logger,
        metrics,
      });
      return { state: followed, admin: joined };
    },
  };
}

/**
 * A follower that was just added holds the copy its seeding left, which may lack the last writes
 * before the owner's file named it; it counts as in sync (and can be promoted) only once it has
 * applied a batch from the write path. An empty batch on each shard whose followers changed
 * gets it there without waiting for the next client write: its shipment fills the gap.
 */
function syncNewFollowers(shards: ShardSet, before: ShardAssignment[], after: ShardAssignment[], logger: Logger): void {
  for (const assignment of after) {
    const previous = before.find((entry) => entry.shard === assignment.shard);
    const added = assignment.followers.filter((node) => !previous?.followers.includes(node));
    if (added.length === 0) continue;
    shards
      .get(assignment.shard)
      ?.commitWrite(() => undefined)
      .catch((error: unknown) => logger.warn({ shard: assignment.shard, err: error }, "could not sync the new followers yet"));
  }
}

/**
 * Stops accepting connections and waits for the requests in flight: responses from now on close
 * their connection, idle keep-alive connections are closed as they appear, and after
 * {@link DRAIN_MS} whatever is left is cut (a cut request commits nothing: each write is one
 * transaction that has either committed or not).
 */
function drain(server: Server, logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    // Ahead of the app, so the flag is set before a synchronous handler answers.
    server.prependListener("request", (_req, res) => {
      res.shouldKeepAlive = false;
    });
    const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
    const force = setTimeout(() => {
      logger.warn({ drainMs: DRAIN_MS }, "requests still in flight after the drain period; closing their connections");
      server.closeAllConnections();
    }, DRAIN_MS);
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
