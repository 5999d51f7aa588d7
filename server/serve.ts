import cluster, { type Worker } from "node:cluster";
import { createServer, type Server } from "node:http";
import type { Logger } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { createApp } from "./app.js";
import type { ServeConfig } from "./config.js";
import { EntityStore } from "./entities/entity-store.js";
import { IdempotencyPurger } from "./storage/idempotency-purger.js";
import { answerWorkerMetricsRequests, workerMetrics } from "./metrics/cluster-metrics.js";
import { purgeMetrics } from "./metrics/purge-metrics.js";
import { registerShardMetrics } from "./metrics/shard-metrics.js";
import { RestartBackoff, WORKER_RESTART_BACKOFF } from "./restart-backoff.js";
import { removeServerLock, writeServerLock } from "./storage/server-lock.js";
import { openDataDirectory, type ShardSet } from "./storage/data-directory.js";

/** How long a worker lets requests in flight finish after a shutdown signal. */
const DRAIN_MS = 10_000;
/** How long the primary waits for its workers before it kills them; past this, exit code 1. */
const SHUTDOWN_BOUND_MS = DRAIN_MS + 5_000;
/** How often a draining worker closes keep-alive connections that have gone idle. */
const IDLE_SWEEP_MS = 50;

/** The primary asks its workers to stop with this message rather than a signal (see runPrimary). */
const SHUTDOWN_MESSAGE = "apostate:shutdown";

/**
 * `apostate serve`: the primary checks (or creates) the data directory, then forks the workers
 * that serve it. SQLite's file locks keep the shards consistent between the workers. The
 * primary also runs the idempotency purge and keeps the shard gauges, once for the whole server.
 */
export async function serve(config: ServeConfig, logger: Logger): Promise<void> {
  if (cluster.isPrimary) await runPrimary(config, logger);
  else await runWorker(config, logger);
}

async function openShards(config: ServeConfig, verify: boolean): Promise<ShardSet> {
  return openDataDirectory(config.dataDir, {
    shardCount: config.shards,
    durability: config.durability,
    busyTimeoutMs: config.busyTimeoutMs,
    verify,
  });
}

async function runPrimary(config: ServeConfig, logger: Logger): Promise<void> {
  // Verified once, read-only first, before any worker opens a file for writing.
  const shards = await openShards(config, true);
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

  let stopping = false;
  let failed = false;
  let listening = 0;
  cluster.on("listening", (_worker, address) => {
    listening += 1;
    if (listening !== config.workers) return;
    const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${address.port}`;
    writeServerLock(shards.directory, url);
    purger.start();
    logger.info({ url, workers: config.workers }, "listening");
  });

  const workers = () => Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined);
  const startedAt = new WeakMap<Worker, number>();
  const fork = () => {
    const worker = cluster.fork();
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

  await stopped;
  await purger.stop();
  // The workers are gone: nothing reads the WALs any more, so they can be emptied completely.
  markClosedCleanly(shards, logger);
  checkpointAll(shards, "TRUNCATE", logger);
  shards.close();
  removeServerLock(shards.directory);
  logger.info({ exitCode: failed ? 1 : 0 }, "stopped");
  process.exit(failed ? 1 : 0);
}

async function runWorker(config: ServeConfig, logger: Logger): Promise<void> {
  // Listen for the stop request before anything else: it may come while the shards still open.
  let stopping = false;
  // eslint-disable-next-line prefer-const -- set once the server listens; a stop asked for earlier must find it unset, not in its temporal dead zone
  let finishStop: (() => void) | undefined;
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

  const shards = await openShards(config, false);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const app = await createApp({
    store: new EntityStore(shards),
    shards,
    logger,
    bodyLimit: config.bodyLimit,
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

/** Records in each shard that nothing writes to it any more, so the next start-up can trust it. */
function markClosedCleanly(shards: ShardSet, logger: Logger): void {
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
function checkpointAll(shards: ShardSet, mode: "PASSIVE" | "TRUNCATE", logger: Logger): void {
  for (const shard of shards.shards) {
    try {
      shard.checkpoint(mode);
    } catch (error) {
      logger.warn({ err: error, shard: shard.placement.shard, mode }, "checkpoint skipped");
    }
  }
}
