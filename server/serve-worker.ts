import { createServer, type Server } from "node:http";
import type { Logger } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { createApp } from "./app.js";
import type { ServeConfig } from "./config.js";
import { EntityStore } from "./entities/entity-store.js";
import { workerMetrics } from "./metrics/cluster-metrics.js";
import { checkpointAll, DRAIN_MS, openShards, SHUTDOWN_MESSAGE } from "./shutdown.js";

/** How often a draining worker closes keep-alive connections that have gone idle. */
const IDLE_SWEEP_MS = 50;

/** A worker of `apostate serve`: opens the shards, serves HTTP, drains on the primary's request. */
export async function runWorker(config: ServeConfig, logger: Logger): Promise<void> {
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
