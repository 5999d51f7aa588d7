import { Command, Option } from "commander";
import { addServeOptions, configProblem, integer, toServeConfig } from "../config.js";
import { createLogger, LOG_LEVELS, LogLevelError } from "../logger.js";
import { serve } from "../serve.js";
import { DataDirectoryError } from "../storage/storage-errors.js";
import { addClusterCommands } from "./cluster-program.js";
import { fail, print } from "./command-exit.js";
import { EXIT_CODES, EXIT_CODES_HELP } from "./exit-codes.js";
import { OperatorError, type OperatorAdmin } from "./operator-admin.js";
import { backupCommand, checkCommand, shardsCommand, type CommandResult } from "./operator-commands.js";
import {
  addOperatorOptions,
  addRemoteOptions,
  openOperatorAdmin,
  toOperatorConfig,
  toRemoteConfig,
  type OperatorConfig,
} from "./operator-options.js";
import { packageVersion } from "./package-version.js";
import { terminalProgress, type Progress } from "./progress.js";
import {
  deleteCommand,
  getCommand,
  keysCommand,
  locateCommand,
  parseEntityData,
  putCommand,
  remoteServer,
  type RemoteServer,
} from "./remote-commands.js";
import type { RemoteConfig } from "./operator-options.js";

type OperatorCommand = (admin: OperatorAdmin, config: OperatorConfig, progress: Progress) => Promise<CommandResult>;
type RemoteCommand = (
  server: RemoteServer,
  config: RemoteConfig,
  args: string[],
  options: Record<string, unknown>,
) => Promise<CommandResult>;

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new OperatorError("give the data as an argument, or pipe it to stdin", EXIT_CODES.usage);
  let text = "";
  for await (const chunk of process.stdin) text += chunk;
  return text;
}

/**
 * The `apostate` command line: `serve`; the operator commands `shards`, `check` and `backup`;
 * `get`, `put`, `delete`, `locate` and `keys` for quick looks at a running server; and
 * `cluster status|move|split|rebalance|up` for a cluster on etcd. Built
 * by a function so tests can parse arguments without starting a process. `hooks.onServing` is
 * called once `serve` has every worker listening.
 *
 * @example
 * await buildProgram().parseAsync(["node", "apostate", "shards", "--data-dir", "./data"]);
 */
export function buildProgram(hooks: { onServing?: () => void } = {}): Command {
  const program = new Command("apostate")
    .description("A sharded SQLite entity store with a REST API.")
    .version(packageVersion(), "-V, --version", "print apostate's version")
    .addHelpText("after", EXIT_CODES_HELP)
    // Before any command is added, so each inherits it. Commander exits 1 for every mistake on
    // the command line (unknown option, bad value, missing argument); those are usage errors.
    .exitOverride((error) => {
      process.exit(error.code.startsWith("commander.") && error.exitCode === 1 ? EXIT_CODES.usage : error.exitCode);
    });

  addServeOptions(program.command("serve").description("serve the REST API from a data directory"))
    .addHelpText(
      "after",
      `\nEnvironment:\n  APOSTATE_LOG_LEVEL  one of ${LOG_LEVELS.join(", ")} (default: info; warn keeps only warnings and errors)`,
    )
    .action(async (options: Record<string, unknown>, command: Command) => {
      const config = toServeConfig(options);
      const problem = configProblem(config);
      if (problem) fail(command, problem, EXIT_CODES.usage);
      try {
        await serve(config, createLogger(), hooks.onServing);
      } catch (error) {
        if (error instanceof DataDirectoryError) fail(command, error.message, EXIT_CODES.damaged);
        if (error instanceof LogLevelError) fail(command, error.message, EXIT_CODES.usage);
        throw error;
      }
    });

  const operatorCommand = (name: string, description: string, withShard: boolean, run: OperatorCommand) =>
    addOperatorOptions(program.command(name).description(description), withShard).action(
      async (options: Record<string, unknown>, command: Command) => {
        const config = toOperatorConfig(options);
        let admin: OperatorAdmin | undefined;
        try {
          admin = await openOperatorAdmin(config);
          print(await run(admin, config, terminalProgress(name)));
        } catch (error) {
          if (error instanceof OperatorError) fail(command, error.message, error.exitCode);
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

  const remoteCommand = (usage: string, description: string, run: RemoteCommand) =>
    addRemoteOptions(program.command(usage).description(description)).action(async (...received: unknown[]) => {
      // commander passes the arguments, then the options, then the command itself.
      const command = received.at(-1) as Command;
      const options = received.at(-2) as Record<string, unknown>;
      const args = received.slice(0, -2) as string[];
      try {
        const config = toRemoteConfig(options);
        print(await run(remoteServer(config), config, args, options));
      } catch (error) {
        if (error instanceof OperatorError) fail(command, error.message, error.exitCode);
        throw error;
      }
    });
  const version = () =>
    new Option("--if-match <version>", "only if the entity is at this version").argParser(integer(1, Number.MAX_SAFE_INTEGER));

  remoteCommand("get <type> <id>", "print an entity of a running server as JSON (data token)", (server, _config, [type, id]) =>
    getCommand(server, type as string, id as string),
  );
  remoteCommand(
    "put <type> <id> [data]",
    "create or replace an entity with a JSON object, given or read from stdin (data token)",
    async (server, _config, [type, id, data], options) =>
      putCommand(server, type as string, id as string, parseEntityData(data ?? (await readStdin())), {
        ifMatch: options.ifMatch as number | undefined,
        ifNoneMatch: options.ifNoneMatch as boolean | undefined,
      }),
  )
    .addOption(version())
    .addOption(new Option("--if-none-match", "only create: refuse when the entity exists"));
  remoteCommand("delete <type> <id>", "delete an entity (data token)", (server, _config, [type, id], options) =>
    deleteCommand(server, type as string, id as string, { ifMatch: options.ifMatch as number | undefined }),
  ).addOption(version());
  remoteCommand("locate <type> <id>", "print the slot and shard of a key (admin token)", (server, config, [type, id]) =>
    locateCommand(server, config, type as string, id as string),
  );
  remoteCommand(
    "keys [type]",
    "list the ids of a type (data token), or with --shard the keys stored in one shard (admin token)",
    async (server, config, [type], options) => {
      const shard = options.shard as number | undefined;
      const prefix = options.prefix as string | undefined;
      if ((type === undefined) === (shard === undefined) || (shard !== undefined && prefix !== undefined)) {
        throw new OperatorError("give a type (and perhaps --prefix), or --shard <n>", EXIT_CODES.usage);
      }
      const source = type !== undefined ? { type, prefix } : { shard: shard as number };
      return keysCommand(server, config, source, options.limit as number | undefined);
    },
  )
    .addOption(new Option("--prefix <prefix>", "only ids that start with this"))
    .addOption(new Option("--shard <n>", "the keys stored in this shard instead").argParser(integer(0, 4095)))
    .addOption(new Option("--limit <n>", "at most this many keys (default: all)").argParser(integer(1, Number.MAX_SAFE_INTEGER)));
  addClusterCommands(program);
  return program;
}
