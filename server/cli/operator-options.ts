import { resolve } from "node:path";
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { integer } from "../config.js";
import { EXIT_CODES } from "./exit-codes.js";
import { OperatorError, type OperatorAdmin } from "./operator-admin.js";
import { remoteAdmin } from "./remote-admin.js";
import { liveServerLock } from "../storage/server-lock.js";

/** Everything an operator command (`shards`, `check`, `backup`) can be told, after validation. */
export interface OperatorConfig {
  url: string | undefined;
  dataDir: string;
  adminToken: string | undefined;
  json: boolean;
  /** One shard, or every shard when absent (`check`, `backup`). */
  shard: number | undefined;
}

function origin(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError("expected a URL such as http://127.0.0.1:8080");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new InvalidArgumentError("expected an http or https URL");
  return url.origin;
}

const urlOption = () =>
  new Option("--url <url>", "a running server's origin (default: the server that holds --data-dir, if one does)")
    .env("APOSTATE_URL")
    .argParser(origin);
const dataDirOption = (description: string) =>
  new Option("--data-dir <dir>", description).env("APOSTATE_DATA_DIR").default("./data");
const adminTokenOption = () => new Option("--admin-token <token>", "bearer token for the admin API").env("APOSTATE_ADMIN_TOKEN");
const jsonOption = () => new Option("--json", "print JSON instead of text").default(false);

/** Adds the operator options to a command; `withShard` adds `--shard` for commands that take one. */
export function addOperatorOptions(command: Command, withShard: boolean): Command {
  command
    .addOption(urlOption())
    .addOption(dataDirOption("data directory, read directly when no server holds it"))
    .addOption(adminTokenOption())
    .addOption(jsonOption());
  if (withShard) {
    command.addOption(
      new Option("--shard <n>", "only this shard (default: every shard)").env("APOSTATE_SHARD").argParser(integer(0, 4095)),
    );
  }
  return command;
}

/**
 * Adds the options of the commands that only talk to a running server: `get`, `put`, … take
 * both tokens; the `cluster` commands, which use only the admin API, take `planes: "admin"`.
 */
export function addRemoteOptions(command: Command, planes: "data and admin" | "admin" = "data and admin"): Command {
  command.addOption(urlOption()).addOption(dataDirOption("find the server that holds this data directory, when --url is absent"));
  if (planes === "data and admin") {
    command.addOption(new Option("--token <token>", "bearer token for the data API (/v1)").env("APOSTATE_TOKEN"));
  }
  return command.addOption(adminTokenOption()).addOption(jsonOption());
}

/** Where a remote command sends its requests, and with which tokens. */
export interface RemoteConfig {
  url: string;
  token: string | undefined;
  adminToken: string | undefined;
  json: boolean;
}

/** The parsed remote options, with `--url` defaulting to the live server that holds `--data-dir`. */
export function toRemoteConfig(options: Record<string, unknown>): RemoteConfig {
  const dataDir = resolve(options.dataDir as string);
  const url = (options.url as string | undefined) ?? liveServerLock(dataDir)?.url;
  if (url === undefined) {
    throw new OperatorError(`no server is running on ${dataDir}: give --url (or APOSTATE_URL)`, EXIT_CODES.unreachable);
  }
  return {
    url,
    token: options.token as string | undefined,
    adminToken: options.adminToken as string | undefined,
    json: options.json as boolean,
  };
}

/** The parsed options (commander has already validated each) as an {@link OperatorConfig}. */
export function toOperatorConfig(options: Record<string, unknown>): OperatorConfig {
  return {
    url: options.url as string | undefined,
    dataDir: options.dataDir as string,
    adminToken: options.adminToken as string | undefined,
    json: options.json as boolean,
    shard: options.shard as number | undefined,
  };
}

/**
 * The admin API of a running server when `--url` names one or a live server holds the data
 * directory (it records where it listens); otherwise the data directory itself, read-only.
 */
export async function openOperatorAdmin(config: OperatorConfig): Promise<OperatorAdmin> {
  if (config.url !== undefined) return remoteAdmin(config.url, config.adminToken);
  const holder = liveServerLock(resolve(config.dataDir));
  if (holder) return remoteAdmin(holder.url, config.adminToken);
  // Loaded only here: the storage layer and SQLite are no part of any other command's start-up,
  // `serve`'s included (its primary forks its workers before it loads them).
  const { offlineAdmin } = await import("./offline-admin.js");
  return offlineAdmin(config.dataDir);
}
