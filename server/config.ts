import { availableParallelism } from "node:os";
import bytes from "bytes";
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import type { Durability } from "./storage/shard.js";

/** Everything `apostate serve` can be told, after validation. */
export interface ServeConfig {
  dataDir: string;
  host: string;
  port: number;
  shards: number;
  workers: number;
  durability: Durability;
  bodyLimit: number;
  idempotencyRetentionMs: number;
  token: string | undefined;
  adminToken: string | undefined;
  busyTimeoutMs: number;
}

/** A commander parser for an integer from `min` to `max`. */
export function integer(min: number, max: number) {
  return (value: string): number => {
    const number = Number(value);
    if (!/^\d+$/.test(value) || number < min || number > max) {
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    }
    return number;
  };
}

function byteSize(value: string): number {
  const parsed = /^\d+(\.\d+)?\s*(b|kb|mb|gb)?$/i.test(value.trim()) ? bytes.parse(value) : null;
  if (parsed === null || parsed < 1) throw new InvalidArgumentError("expected a size such as 1048576, 512kb or 1mb");
  return parsed;
}

const DURATION_UNITS_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

function duration(value: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(value.trim());
  if (!match) throw new InvalidArgumentError("expected a duration such as 90s, 30m, 24h or 7d");
  const ms = Number(match[1]) * DURATION_UNITS_MS[match[2] as keyof typeof DURATION_UNITS_MS];
  if (ms < 1_000) throw new InvalidArgumentError("expected at least 1s");
  return ms;
}

/** A token that can be sent in an `Authorization: Bearer` header as it is. */
const TOKEN = /^[\x21-\x7e]{1,512}$/;

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/;

function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

/**
 * The `serve` command's options. Each flag also reads `APOSTATE_<FLAG>` from the environment
 * (a flag wins over the environment).
 */
function serveOptions(): Option[] {
  const option = (flags: string, description: string) =>
    new Option(flags, description).env(`APOSTATE_${flags.split(" ")[0]!.slice(2).replaceAll("-", "_").toUpperCase()}`);
  return [
    option("--data-dir <dir>", "data directory (created when absent or empty)").default("./data"),
    option("--host <host>", "address to bind; off loopback, --token and --admin-token are required").default("127.0.0.1"),
    option("--port <port>", "TCP port (0 picks a free one)").default(8080).argParser(integer(0, 65535)),
    option("--shards <n>", "shard count of a new data directory (an existing one keeps its own)")
      .default(8)
      .argParser(integer(1, 4096)),
    option("--workers <n>", "worker processes (default: number of cores)")
      .default(availableParallelism())
      .argParser(integer(1, 256)),
    option("--durability <mode>", "process: survive a crash of the server; power: also survive power loss")
      .choices(["process", "power"])
      .default("process"),
    option("--body-limit <size>", "largest request body").default(1_048_576).argParser(byteSize),
    option("--idempotency-retention <duration>", "how long idempotency records are kept")
      .default(86_400_000, "24h")
      .argParser(duration),
    option("--token <token>", "bearer token for /v1"),
    option("--admin-token <token>", "bearer token for /admin and /metrics"),
    option("--busy-timeout <ms>", "how long a write waits for a shard locked by another worker before 503")
      .default(5000)
      .argParser(integer(0, 600_000)),
  ];
}

/** Checks that span options; returns the problem, or undefined when the configuration holds. */
export function configProblem(config: ServeConfig): string | undefined {
  for (const [flag, token] of [
    ["--token", config.token],
    ["--admin-token", config.adminToken],
  ] as const) {
    if (token !== undefined && !TOKEN.test(token)) {
      return `${flag} must be 1 to 512 visible ASCII characters, no spaces (it is sent as a bearer token)`;
    }
  }
  if (config.token !== undefined && config.token === config.adminToken) {
    return "--token and --admin-token must differ: the data token must never open /admin";
  }
  if (!isLoopback(config.host) && (!config.token || !config.adminToken)) {
    return `--host ${config.host} is not a loopback address: set --token and --admin-token (or APOSTATE_TOKEN and APOSTATE_ADMIN_TOKEN)`;
  }
  return undefined;
}

export function toServeConfig(options: Record<string, unknown>): ServeConfig {
  return {
    dataDir: options.dataDir as string,
    host: options.host as string,
    port: options.port as number,
    shards: options.shards as number,
    workers: options.workers as number,
    durability: options.durability as Durability,
    bodyLimit: options.bodyLimit as number,
    idempotencyRetentionMs: options.idempotencyRetention as number,
    token: options.token as string | undefined,
    adminToken: options.adminToken as string | undefined,
    busyTimeoutMs: options.busyTimeout as number,
  };
}

export function addServeOptions(command: Command): Command {
  for (const option of serveOptions()) command.addOption(option);
  return command;
}
