import type { BackupInfo } from "../admin/backups.js";
import type { CheckResult } from "../admin/shard-admin.js";
import type { OperatorAdmin } from "./operator-admin.js";
import { backupReport, checkReport, shardTable } from "./operator-output.js";
import type { OperatorConfig } from "./operator-options.js";

/** What a command prints, and its exit code (1 when a check found damage). */
export interface CommandResult {
  output: string;
  exitCode: number;
}

const print = (config: OperatorConfig, value: unknown, text: string) => (config.json ? JSON.stringify(value, null, 2) : text);

/** `apostate shards`: every shard's figures. */
export async function shardsCommand(admin: OperatorAdmin, config: OperatorConfig): Promise<CommandResult> {
  const shards = await admin.shards();
  return { output: print(config, { shards }, shardTable(shards)), exitCode: 0 };
}

/** `apostate check`: SQLite's integrity check on one shard or all; exit code 1 if any is damaged. */
export async function checkCommand(admin: OperatorAdmin, config: OperatorConfig): Promise<CommandResult> {
  const results: CheckResult[] = [];
  for (const shard of await shardNumbers(admin, config)) results.push(await admin.check(shard));
  return {
    output: print(config, { results }, checkReport(results)),
    exitCode: results.every((result) => result.ok) ? 0 : 1,
  };
}

/** `apostate backup`: an online backup of one shard or all, into the data directory's `backups/`. */
export async function backupCommand(admin: OperatorAdmin, config: OperatorConfig): Promise<CommandResult> {
  const backups: BackupInfo[] = [];
  for (const shard of await shardNumbers(admin, config)) backups.push(await admin.backup(shard));
  return { output: print(config, { backups }, backupReport(backups)), exitCode: 0 };
}

async function shardNumbers(admin: OperatorAdmin, config: OperatorConfig): Promise<number[]> {
  if (config.shard !== undefined) return [config.shard];
  return admin.shardNumbers();
}
