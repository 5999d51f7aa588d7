import { EXIT_CODES } from "./exit-codes.js";
import type { OperatorAdmin } from "./operator-admin.js";
import { backupReport, checkReport, shardTable } from "./operator-output.js";
import type { OperatorConfig } from "./operator-options.js";
import type { Progress } from "./progress.js";

/** What a command prints, and its exit code (1 when a check found damage). */
export interface CommandResult {
  output: string;
  exitCode: number;
}

/** `value` as indented JSON under `--json`, else `text`. */
export const jsonOrText = (config: { json: boolean }, value: unknown, text: string) =>
  config.json ? JSON.stringify(value, null, 2) : text;

/** `apostate shards`: every shard's figures. */
export async function shardsCommand(admin: OperatorAdmin, config: OperatorConfig): Promise<CommandResult> {
  const shards = await admin.shards();
  return { output: jsonOrText(config, { shards }, shardTable(shards)), exitCode: EXIT_CODES.ok };
}

/** `apostate check`: SQLite's integrity check on one shard or all; exit code 1 if any is damaged. */
export async function checkCommand(admin: OperatorAdmin, config: OperatorConfig, progress: Progress): Promise<CommandResult> {
  const results = await eachShard(admin, config, progress, (shard) => admin.check(shard));
  return {
    output: jsonOrText(config, { results }, checkReport(results)),
    exitCode: results.every((result) => result.ok) ? EXIT_CODES.ok : EXIT_CODES.damaged,
  };
}

/** `apostate backup`: an online backup of one shard or all, into the data directory's `backups/`. */
export async function backupCommand(admin: OperatorAdmin, config: OperatorConfig, progress: Progress): Promise<CommandResult> {
  const backups = await eachShard(admin, config, progress, (shard) => admin.backup(shard));
  return { output: jsonOrText(config, { backups }, backupReport(backups)), exitCode: EXIT_CODES.ok };
}

/** `run` on one shard (`--shard`) or on each in turn, reporting progress after each. */
async function eachShard<T>(
  admin: OperatorAdmin,
  config: OperatorConfig,
  progress: Progress,
  run: (shard: number) => Promise<T>,
): Promise<T[]> {
  const shards = config.shard !== undefined ? [config.shard] : await admin.shardNumbers();
  const results: T[] = [];
  progress.update(0, shards.length);
  try {
    for (const shard of shards) {
      results.push(await run(shard));
      progress.update(results.length, shards.length);
    }
  } finally {
    progress.end();
  }
  return results;
}
