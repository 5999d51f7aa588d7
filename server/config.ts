import { availableParallelism } from "node:os";
import bytes from "bytes";
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
// topology.ts, not the etcd modules: loading etcd's client would cost every start-up ~0.3 s.
import { DEFAULT_LEASE_TTL_SECONDS, isClusterName, isNodeId } from "./cluster/topology.js";
import { REQUEST_LOGGING, SLOW_REQUEST_MS, type RequestLogging } from "./http/request-observer.js";
import type { Durability } from "./storage/shard.js";

/** How a node takes part in a cluster on etcd (`--etcd` and the flags that go with it). */
export interface ClusterConfig {
  etcd: string[];
  cluster: string;
  node: string;
  advertise: string;
  leaseTtlSeconds: number;
  /** Copies of each shard: its owner's and `replicas - 1` followers' (the coordinator's setting counts). */
  replicas: number;
}

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
  logRequests: RequestLogging;
  /** Undefined when the node runs on its own, without etcd. */
  cluster: ClusterConfig | undefined;
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

/** An http(s) URL with nothing after the origin but an optional `/`. */
function httpOrigin(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  const bare = url.pathname === "/" && !url.search && !url.hash && !url.username && !url.password;
  return (url.protocol === "http:" || url.protocol === "https:") && bare ? url.origin : undefined;
}

function originParser(what: string) {
  return (value: string): string => {
    const origin = httpOrigin(value.trim());
    if (!origin) throw new InvalidArgumentError(`expected ${what}, an http(s) URL such as http://10.0.0.1:8080`);
    return origin;
  };
}

function etcdUrls(value: string): string[] {
  const urls = value.split(",").map((url) => url.trim());
  return urls.map(originParser("comma-separated etcd client URLs"));
}

function nameParser(what: string, valid: (value: string) => boolean) {
  return (value: string): string => {
    if (!valid(value)) throw new InvalidArgumentError(`expected ${what}: 1 to 32 of a-z, 0-9 and -, not starting with -`);
    return value;
  };
}

/** etcd leases count whole seconds; below 2 s a healthy node could lose its lease to a hiccup. */
function leaseTtl(value: string): number {
  const ms = duration(value);
  if (ms % 1_000 !== 0 || ms < 2_000 || ms > 3_600_000) {
    throw new InvalidArgumentError("expected whole seconds from 2s to 1h, such as 10s");
  }
  return ms / 1_000;
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
    option(
      "--log-requests <which>",
      `all: a log line per request; slow: only those that take ${SLOW_REQUEST_MS / 1000} s or more, or are cut off`,
    )
      .choices(REQUEST_LOGGING)
      .default("slow"),
    option("--etcd <urls>", "join a cluster whose topology lives in these etcd servers (comma-separated)").argParser(etcdUrls),
    option("--cluster <name>", "the cluster's name (with --etcd)").argParser(nameParser("a cluster name", isClusterName)),
    option("--node <id>", "this node's id in the cluster (with --etcd)").argParser(nameParser("a node id", isNodeId)),
    option("--advertise <url>", "the URL other nodes and clients reach this node at (with --etcd)").argParser(
      originParser("the URL to advertise"),
    ),
    option("--lease-ttl <duration>", "how long a node that stops answering etcd stays in the cluster (with --etcd)")
      .default(DEFAULT_LEASE_TTL_SECONDS, `${DEFAULT_LEASE_TTL_SECONDS}s`)
      .argParser(leaseTtl),
    option(
      "--replicas <n>",
      "copies of each shard on different nodes (with --etcd): 2 or 3 keep every acknowledged write when a node dies",
    )
      .default(1)
      .argParser(integer(1, 3)),
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

const CLUSTER_FLAGS = [
  ["--cluster", "cluster"],
  ["--node", "node"],
  ["--advertise", "advertise"],
] as const;

/** `--etcd` needs `--cluster`, `--node` and `--advertise`, and they mean nothing without it. */
function clusterOptionsProblem(options: Record<string, unknown>): string | undefined {
  const given = CLUSTER_FLAGS.filter(([, key]) => options[key] !== undefined).map(([flag]) => flag);
  if (options.etcd === undefined) {
    return given.length > 0 ? `${given.join(", ")} only make${given.length === 1 ? "s" : ""} sense with --etcd` : undefined;
  }
  const missing = CLUSTER_FLAGS.filter(([, key]) => options[key] === undefined).map(([flag]) => flag);
  return missing.length > 0 ? `--etcd also needs ${missing.join(", ")}` : undefined;
}

function toClusterConfig(options: Record<string, unknown>): ClusterConfig | undefined {
  if (options.etcd === undefined) return undefined;
  return {
    etcd: options.etcd as string[],
    cluster: options.cluster as string,
    node: options.node as string,
    advertise: options.advertise as string,
    leaseTtlSeconds: options.leaseTtl as number,
    replicas: options.replicas as number,
  };
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
    logRequests: options.logRequests as RequestLogging,
    cluster: toClusterConfig(options),
  };
}

/** Adds the serve options; a cluster flag given without the others stops the command. */
export function addServeOptions(command: Command): Command {
  for (const option of serveOptions()) command.addOption(option);
  return command.hook("preAction", (serve) => {
    const problem = clusterOptionsProblem(serve.opts());
    if (problem) serve.error(`error: ${problem}`);
  });
}
