import { resolve } from "node:path";
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { integer } from "../config.js";
import { offlineAdmin } from "./offline-admin.js";
import type { OperatorAdmin } from "./operator-admin.js";
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

/** Adds the operator options to a command; `withShard` adds `--shard` for commands that take one. */
export function addOperatorOptions(command: Command, withShard: boolean): Command {
  command
    .addOption(
      new Option("--url <url>", "a running server's origin (default: the server that holds --data-dir, if one does)")
        .env("APOSTATE_URL")
        .argParser(origin),
    )
    .addOption(
      new Option("--data-dir <dir>", "data directory, read directly when no server holds it")
        .env("APOSTATE_DATA_DIR")
        .default("./data"),
    )
    .addOption(new Option("--admin-token <token>", "bearer token for the admin API").env("APOSTATE_ADMIN_TOKEN"))
    .addOption(new Option("--json", "print JSON instead of a table").default(false));
  if (withShard) {
    command.addOption(
      new Option("--shard <n>", "only this shard (default: every shard)").env("APOSTATE_SHARD").argParser(integer(0, 4095)),
    );
  }
  return command;
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
export function openOperatorAdmin(config: OperatorConfig): OperatorAdmin {
  if (config.url !== undefined) return remoteAdmin(config.url, config.adminToken);
  const holder = liveServerLock(resolve(config.dataDir));
  if (holder) return remoteAdmin(holder.url, config.adminToken);
  return offlineAdmin(config.dataDir);
}
