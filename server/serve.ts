import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import { Registry } from "prom-client";
import { CLUSTER_SNAPSHOT_MESSAGE, CLUSTER_SNAPSHOT_REQUEST } from "./cluster/cluster-state.js";
import type { ClusterConfig, ServeConfig } from "./config.js";
import type { ClusterNode } from "./cluster/cluster-node.js";
import { IdempotencyPurger } from "./storage/idempotency-purger.js";
import { answerWorkerMetricsRequests } from "./metrics/cluster-metrics.js";
import { purgeMetrics } from "./metrics/purge-metrics.js";
import { registerShardMetrics } from "./metrics/shard-metrics.js";
import { RestartBackoff, WORKER_RESTART_BACKOFF } from "./restart-backoff.js";
import type { ShardSet } from "./storage/data-directory.js";
import { removeServerLock, writeServerLock } from "./storage/server-lock.js";
import { checkpointAll, DRAIN_MS, markClosedCleanly, openShards, SHUTDOWN_MESSAGE } from "./shutdown.js";
import { StartGate, workerEnvironment } from "./start-handshake.js";

/** How long the primary waits for its workers before it kills them; past this, exit code 1. */
const SHUTDOWN_BOUND_MS = DRAIN_MS + 5_000;

/** The primary's data directory and, on a cluster node, its membership. */
interface VerifiedDirectory {
  shards: ShardSet;
  node?: ClusterNode;
}

/** A cluster node's primary: its data directory, opened as the cluster needs, and its membership. */
async function joinCluster(config: ServeConfig & { cluster: ClusterConfig }, logger: Logger): Promise<VerifiedDirectory> {
  // Loaded only here: etcd's client costs a single-node start-up ~0.3 s it has no use for.
  const { ClusterNode } = await import("./cluster/cluster-node.js");
  const options = { ...config.cluster, adminToken: config.adminToken, logger };
  const shards = await openShards(config, true, { shardCount: (await ClusterNode.mapExists(options)) ? 0 : config.shards });
  try {
    return { shards, node: await ClusterNode.join(shards, options) };
  } catch (error) {
    shards.close();
    throw error;
  }
}

/** Verified once, read-only first, before any worker opens a file for writing. */
function openVerified(config: ServeConfig, logger: Logger): Promise<VerifiedDirectory> {
  if (config.cluster) return joinCluster({ ...config, cluster: config.cluster }, logger);
  return openShards(config, true).then((shards) => ({ shards }));
}

/**
 * `apostate serve`, the primary: it forks the workers that serve HTTP first thing, so they load
 * their code while it checks (or creates) the data directory, then gives them the go-ahead to
 * open it. SQLite's file locks keep the shards consistent between the workers. The primary also
 * runs the idempotency purge and keeps the shard gauges, once for the whole server; it never
 * loads express, the validator or the routes (a worker runs main.ts's other branch).
 */
export async function serve(config: ServeConfig, logger: Logger): Promise<void> {
  const gate = new StartGate();
  let stopping = false;
  let failed = false;
  let listening = 0;
  cluster.on("message", (worker, message) => gate.onMessage(worker, message));

  const workers = () => Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined);
  const startedAt = new WeakMap<Worker, number>();
  const fork = () => {
    const worker = cluster.fork(workerEnvironment(config));
    startedAt.set(worker, performance.now());
    logger.info({ worker: worker.process.pid }, "worker started");
  };
  const backoff = new RestartBackoff(WORKER_RESTART_BACKOFF);
  let resolveStopped = () => {};
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  // A stop may come while a replacement waits out its back-off, with no worker left to exit.
  const resolveOnceAllGone = () => {
    if (workers().length === 0) resolveStopped();
  };
  cluster.on("exit", (worker, code, signal) => {
    if (!stopping && listening < config.workers) {
      // A worker that cannot even start (port taken, files refused) would fail again.
      logger.error({ worker: worker.process.pid, code, signal }, "a worker failed to start; stopping");
      for (const other of workers()) other.process.kill("SIGKILL");
      process.exit(1);
    }
    if (!stopping) {
      const delayMs = backoff.next(performance.now() - (startedAt.get(worker) ?? 0));
      logger.error({ worker: worker.process.pid, code, signal, delayMs }, "worker died; starting another");
      setTimeout(() => {
        if (!stopping) fork();
      }, delayMs);
      return;
    }
    // A worker still loading when the signal reached its process group dies of it before it
    // can handle it; it had served nothing, so that is a clean stop too.
    const diedOfStopSignal = signal === "SIGTERM" || signal === "SIGINT";
    if (code !== 0 && !diedOfStopSignal) failed = true;
    resolveOnceAllGone();
  });

  /*
   * A signal from a terminal or `kill -- -pgid` reaches every worker as well as the primary, so
   * the primary tells its workers by message: a worker then counts only real signals, and a
   * second Ctrl-C still stops it at once.
   */
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      for (const worker of workers()) worker.process.kill("SIGKILL");
      process.exit(1);
    }
    stopping = true;
    gate.stop();
    logger.info({ signal }, "stopping: finishing requests in flight");
    for (const worker of workers()) if (worker.isConnected()) worker.send(SHUTDOWN_MESSAGE);
    resolveOnceAllGone();
    setTimeout(() => {
      logger.error({ boundMs: SHUTDOWN_BOUND_MS }, "workers did not stop in time; killing them");
      for (const worker of workers()) worker.process.kill("SIGKILL");
      process.exit(1);
    }, SHUTDOWN_BOUND_MS).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  /*
   * Each worker accepts from the shared listening socket itself instead of the primary accepting
   * and handing connections over (node's default on Linux): a connection then belongs to one
   * process only, and when a worker dies the kernel closes its connections, where a handed-over
   * connection in flight to a dead worker could hang; connections not yet accepted wait in the
   * socket's backlog for the other workers.
   */
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  for (let i = 0; i < config.workers; i += 1) fork();

  const { shards, node: clusterNode } = await openVerified(config, logger).catch((error: unknown) => {
    // The workers have opened nothing; they go with the primary, whose caller reports the error.
    stopping = true;
    for (const worker of workers()) worker.process.kill("SIGKILL");
    throw error;
  });
  if (clusterNode) {
    logger.info({ cluster: config.cluster?.cluster, node: config.cluster?.node }, "joined the cluster");
    const send = (worker: Worker) => {
      if (worker.isConnected()) worker.send({ kind: CLUSTER_SNAPSHOT_MESSAGE, snapshot: clusterNode.snapshot() });
    };
    clusterNode.onSnapshot(() => workers().forEach(send));
    cluster.on("message", (worker, message) => {
      if (message === CLUSTER_SNAPSHOT_REQUEST) send(worker);
    });
  }
  if (shards.uncleanShards.length > 0) {
    logger.warn(
      { shards: shards.uncleanShards },
      "shards not closed cleanly last time: their WAL, size and structure were checked; `apostate check` reads every page",
    );
  }
  logger.info({ dataDir: shards.directory, shards: shards.shards.length }, "data directory ready");

  const registry = new Registry();
  registerShardMetrics(registry, shards);
  answerWorkerMetricsRequests(registry);
  const purger = new IdempotencyPurger(shards, config.idempotencyRetentionMs, logger, purgeMetrics(registry));
  cluster.on("listening", (_worker, address) => {
    listening += 1;
    if (listening !== config.workers) return;
    const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${address.port}`;
    writeServerLock(shards.directory, url);
    purger.start();
    logger.info({ url, workers: config.workers }, "listening");
  });
  gate.ready();

  await stopped;
  await purger.stop();
  await clusterNode?.leave().catch((error: unknown) => logger.warn({ err: error }, "could not leave the cluster cleanly"));
  // The workers are gone: nothing reads the WALs any more, so they can be emptied completely.
  markClosedCleanly(shards, logger);
  checkpointAll(shards, "TRUNCATE", logger);
  shards.close();
  removeServerLock(shards.directory);
  logger.info({ exitCode: failed ? 1 : 0 }, "stopped");
  process.exit(failed ? 1 : 0);
}
