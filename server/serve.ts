import cluster from "node:cluster";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { createApp } from "./app.js";
import type { ServeConfig } from "./config.js";
import { EntityStore } from "./entities/entity-store.js";
import { IdempotencyPurger } from "./entities/idempotency-purger.js";
import { openDataDirectory } from "./storage/data-directory.js";

/**
 * `apostate serve`: the primary checks (or creates) the data directory, then forks the workers
 * that serve it. SQLite's file locks keep the shards consistent between the workers.
 */
export async function serve(config: ServeConfig, logger: Logger): Promise<void> {
  if (cluster.isPrimary) await runPrimary(config, logger);
  else await runWorker(config, logger);
}

async function openShards(config: ServeConfig, verify: boolean) {
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
  logger.info({ dataDir: shards.directory, shards: shards.shards.length }, "data directory ready");
  shards.close();

  let stopping = false;
  let listening = 0;
  const fork = () => cluster.fork();
  cluster.on("listening", (_worker, address) => {
    listening += 1;
    if (listening === config.workers) {
      logger.info({ url: `http://${config.host}:${address.port}`, workers: config.workers }, "listening");
    }
  });
  cluster.on("exit", (worker, code, signal) => {
    if (stopping) return;
    logger.error({ worker: worker.process.pid, code, signal }, "worker died; starting another");
    fork();
  });
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, "stopping");
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  for (let i = 0; i < config.workers; i += 1) fork();
  await new Promise<void>((resolve) => {
    cluster.on("exit", () => {
      if (stopping && Object.keys(cluster.workers ?? {}).length === 0) resolve();
    });
  });
  logger.info("stopped");
}

async function runWorker(config: ServeConfig, logger: Logger): Promise<void> {
  const shards = await openShards(config, false);
  const store = new EntityStore(shards);
  const purger = new IdempotencyPurger(shards, config.idempotencyRetentionMs, logger);
  const app = createApp({ store, logger, bodyLimit: config.bodyLimit, token: config.token, adminToken: config.adminToken });
  const server = app.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  logger.debug({ port: (server.address() as AddressInfo).port }, "worker listening");
  purger.start();

  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1);
    stopping = true;
    purger.stop();
    server.close(() => {
      shards.close();
      process.exit(0);
    });
    server.closeIdleConnections();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
