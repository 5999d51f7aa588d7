import type { Worker } from "node:cluster";
import type { ServeConfig } from "./config.js";

/*
 * How the primary of `apostate serve` and its workers start and stop. The primary forks them
 * first thing, and they load their code while it checks the data directory; a worker opens
 * nothing until the primary says the directory is fit to serve. A message sent before the
 * worker listens for it would be lost, so the worker speaks first.
 */

/** How long a worker lets requests in flight finish after a shutdown signal. */
export const DRAIN_MS = 10_000;

/** The primary asks its workers to stop with this message rather than a signal (see serve.ts). */
export const SHUTDOWN_MESSAGE = "apostate:shutdown";

/**
 * A worker's exit code when an fsync of a shard's WAL failed (EX_IOERR of sysexits.h): the
 * primary then stops the whole server instead of starting another worker (see serve.ts).
 */
export const WAL_SYNC_FAILED_EXIT_CODE = 74;

/** The environment variable that carries a worker's configuration, as JSON. */
const WORKER_CONFIG_ENV = "APOSTATE_WORKER_CONFIG";

/** A worker's word that its code is loaded and it listens for the go-ahead. */
const LOADED_MESSAGE = "apostate:worker-loaded";

/** The primary's go-ahead: the data directory is checked (and the node is in its cluster). */
const START_MESSAGE = "apostate:start";

/** The environment of a worker forked with `config`. */
export function workerEnvironment(config: ServeConfig): Record<string, string> {
  return { [WORKER_CONFIG_ENV]: JSON.stringify(config) };
}

/** The configuration a worker was forked with. */
export function forkedWorkerConfig(): ServeConfig {
  const json = process.env[WORKER_CONFIG_ENV];
  if (json === undefined) throw new Error(`a worker needs ${WORKER_CONFIG_ENV}; only \`apostate serve\` forks workers`);
  // JSON has no undefined: the fields that were undefined come back absent, which reads the same.
  return JSON.parse(json) as ServeConfig;
}

/** In a worker: resolves once the primary gives the go-ahead. */
export function primaryGoAhead(): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown) => {
      if (message !== START_MESSAGE) return;
      process.off("message", onMessage);
      resolve();
    };
    process.on("message", onMessage);
    process.send?.(LOADED_MESSAGE);
  });
}

/**
 * In the primary: gives each worker the go-ahead once both have happened, the worker has loaded
 * and the primary has called `ready()`. A worker forked later (a replacement) gets it at once.
 * Once the server stops, a worker that reports in is told to stop instead: the stop request the
 * primary sent it while it was loading found no listener.
 */
export class StartGate {
  private state: "checking" | "ready" | "stopping" = "checking";
  private readonly waiting = new Set<Worker>();

  /** Call from the primary's `cluster.on("message")`. */
  onMessage(worker: Worker, message: unknown): void {
    if (message !== LOADED_MESSAGE) return;
    if (this.state === "checking") this.waiting.add(worker);
    else this.answer(worker);
  }

  ready(): void {
    if (this.state !== "checking") return;
    this.state = "ready";
    for (const worker of this.waiting) this.answer(worker);
    this.waiting.clear();
  }

  /** Call when the primary sends its workers the stop request (the waiting ones listen for it already). */
  stop(): void {
    this.state = "stopping";
    this.waiting.clear();
  }

  private answer(worker: Worker): void {
    if (worker.isConnected()) worker.send(this.state === "ready" ? START_MESSAGE : SHUTDOWN_MESSAGE);
  }
}
