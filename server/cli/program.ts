import { Command } from "commander";
import { addServeOptions, configProblem, toServeConfig } from "../config.js";
import { createLogger, LOG_LEVELS, LogLevelError } from "../logger.js";
import { serve } from "../serve.js";
import { DataDirectoryError } from "../storage/storage-errors.js";
import { OperatorError, type OperatorAdmin } from "./operator-admin.js";
import { backupCommand, checkCommand, shardsCommand, type CommandResult } from "./operator-commands.js";
import { addOperatorOptions, openOperatorAdmin, toOperatorConfig, type OperatorConfig } from "./operator-options.js";

type OperatorCommand = (admin: OperatorAdmin, config: OperatorConfig) => Promise<CommandResult>;

/**
 * The `apostate` command line: `serve`, and the operator commands `shards`, `check` and
 * `backup`. Built by a function so tests can parse arguments without starting a process.
 *
 * @example
 * await buildProgram().parseAsync(["node", "apostate", "shards", "--data-dir", "./data"]);
 */
export function buildProgram(): Command {
  const program = new Command("apostate").description("A sharded SQLite entity store with a REST API.");

  addServeOptions(program.command("serve").description("serve the REST API from a data directory"))
    .addHelpText(
      "after",
      `\nEnvironment:\n  APOSTATE_LOG_LEVEL  one of ${LOG_LEVELS.join(", ")} (default: info; warn keeps only warnings and errors)`,
    )
    .action(async (options: Record<string, unknown>, command: Command) => {
      const config = toServeConfig(options);
      const problem = configProblem(config);
      if (problem) command.error(`error: ${problem}`);
      try {
        await serve(config, createLogger());
      } catch (error) {
        if (error instanceof DataDirectoryError || error instanceof LogLevelError) command.error(`error: ${error.message}`);
        throw error;
      }
    });

  const operatorCommand = (name: string, description: string, withShard: boolean, run: OperatorCommand) =>
    addOperatorOptions(program.command(name).description(description), withShard).action(
      async (options: Record<string, unknown>, command: Command) => {
        const config = toOperatorConfig(options);
        let admin: OperatorAdmin | undefined;
        try {
          admin = openOperatorAdmin(config);
          const { output, exitCode } = await run(admin, config);
          process.stdout.write(`${output}\n`);
          process.exitCode = exitCode;
        } catch (error) {
          if (error instanceof OperatorError) command.error(`error: ${error.message}`);
          throw error;
        } finally {
          admin?.close();
        }
      },
    );
  operatorCommand(
    "shards",
    "list the shards with their figures (of a running server, or of a data directory)",
    false,
    shardsCommand,
  );
  operatorCommand("check", "run SQLite's integrity check on the shards; exit code 1 if any is damaged", true, checkCommand);
  operatorCommand("backup", "back up the shards online into the data directory's backups/ folder", true, backupCommand);
  return program;
}
