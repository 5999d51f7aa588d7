import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import { CLUSTER_SNAPSHOT_MESSAGE, CLUSTER_SNAPSHOT_REQUEST } from "./cluster/cluster-state.js";
import type { ServeConfig } from "./config.js";
import { RestartBackoff, WORKER_RESTART_BACKOFF } from "./restart-backoff.js";
import { DRAIN_MS, SHUTDOWN_MESSAGE, StartGate, WAL_SYNC_FAILED_EXIT_CODE, workerEnvironment } from "./worker-protocol.js";

/** How long the primary waits for its workers before it kills them; past this, exit code 1. */
const SHUTDOWN_BOUND_MS = DRAIN_MS + 5_000;

/**
 * `apostate serve`, the primary: it forks the workers that serve HTTP first thing, so they load
 * their code while it loads its own and checks (or creates) the data directory
 * (primary-directory.ts), then gives them the go-ahead to open it. SQLite's file locks keep the
 * shards consistent between the workers. The primary never loads express, the validator or the
 * routes (a worker runs main.ts's other branch). `onServing` is called once every worker listens.
 */
export async function serve(config: ServeConfig, logger: Logger, onServing?: () => void): Promise<void> {
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
    if (code === WAL_SYNC_FAILED_EXIT_CODE) {
      // Not a clean close either: the files stay marked as a crash left them, for the next start-up.
      logger.fatal(
        { worker: worker.process.pid, code },
        "a worker's fsync of a shard's WAL failed, so the disk may not hold writes it was given: the server stops. " +
          "Check the disk, then start the server again: start-up copies each WAL into its shard file and fsyncs it before serving",
      );
      for (const other of workers()) other.process.kill("SIGKILL");
      process.exit(1);
    }
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

  const directory = await import("./primary-directory.js")
    .then(({ openPrimaryDirectory }) => openPrimaryDirectory(config, logger))
    .catch((error: unknown) => {
      // The workers have opened nothing; they go with the primary, whose caller reports the error.
      stopping = true;
      for (const worker of workers()) worker.process.kill("SIGKILL");
      throw error;
    });
  const { shards, node: clusterNode } = directory;
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

  cluster.on("listening", (_worker, address) => {
    listening += 1;
    if (listening !== config.workers) return;
    const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${address.port}`;
    directory.serving(url);
    logger.info({ url, workers: config.workers }, "listening");
    onServing?.();
  });
  gate.ready();

  await stopped;
  await directory.close();
  logger.info({ exitCode: failed ? 1 : 0 }, "stopped");
  process.exit(failed ? 1 : 0);
}
