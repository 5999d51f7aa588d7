import { InvalidArgumentError, Option, type Command } from "commander";
import { isNodeId } from "../cluster/topology.js";
import { integer } from "../config.js";
import { moveCommand, rebalanceCommand, splitCommand, statusCommand, type ClusterCommandConfig } from "./cluster-commands.js";
import { clusterUp } from "./cluster-up.js";
import { fail, print } from "./command-exit.js";
import { OperatorError } from "./operator-admin.js";
import type { CommandResult } from "./operator-commands.js";
import { addRemoteOptions, toRemoteConfig } from "./operator-options.js";
import { remoteServer } from "./remote-commands.js";
import type { Remote } from "./remote-request.js";

type ClusterCommand = (admin: Remote, config: ClusterCommandConfig, options: Record<string, unknown>) => Promise<CommandResult>;

function nodeId(value: string): string {
  if (!isNodeId(value)) throw new InvalidArgumentError("expected a node id: 1 to 32 of a-z, 0-9 and -, not starting with -");
  return value;
}

const shardOption = () => new Option("--shard <n>", "the shard").argParser(integer(0, 4095)).makeOptionMandatory();
const waitOption = () =>
  new Option("--wait", "follow until done (exit 0) or aborted (exit 4), each state on stderr as it is reached").default(false);
const writeLine = (stream: NodeJS.WriteStream) => (line: string) => void stream.write(`${line}\n`);

/**
 * `apostate cluster status|move|split|rebalance`, through a node's admin API like the other
 * remote commands, and `apostate cluster up`, the local demo.
 */
export function addClusterCommands(program: Command): void {
  const cluster = program
    .command("cluster")
    .description("a cluster on etcd: its status, moving and splitting shards (admin token), and a local demo (up)");

  const clusterCommand = (name: string, description: string, run: ClusterCommand) =>
    addRemoteOptions(cluster.command(name).description(description), "admin").action(
      async (options: Record<string, unknown>, command: Command) => {
        try {
          const remote = toRemoteConfig(options);
          const config = { url: remote.url, json: remote.json, wait: options.wait === true, report: writeLine(process.stderr) };
          print(await run(remoteServer(remote).admin, config, options));
        } catch (error) {
          if (error instanceof OperatorError) fail(command, error.message, error.exitCode);
          throw error;
        }
      },
    );

  clusterCommand(
    "status",
    "the nodes (alive, shards), the shards (slots, owner, epoch, state) and the moves in progress",
    statusCommand,
  );
  clusterCommand("move", "move a shard to another node, online", (admin, config, options) =>
    moveCommand(admin, config, options.shard as number, options.to as string),
  )
    .addOption(shardOption())
    .addOption(new Option("--to <node>", "the node to move it to").argParser(nodeId).makeOptionMandatory())
    .addOption(waitOption());
  clusterCommand(
    "split",
    "split a shard in two on its node: a new shard takes the upper half of its slots",
    (admin, config, options) => splitCommand(admin, config, options.shard as number),
  )
    .addOption(shardOption())
    .addOption(waitOption());
  clusterCommand("rebalance", "move shards until every live node owns a fair share", rebalanceCommand).addOption(waitOption());

  cluster
    .command("up")
    .description(
      "run a local demo cluster: etcd (from PATH) and --nodes nodes on consecutive ports, rebalanced, until Ctrl-C; " +
        "the same --data-dir again resumes it",
    )
    .addOption(new Option("--nodes <n>", "how many nodes").default(3).argParser(integer(1, 16)))
    .addOption(new Option("--data-dir <dir>", "etcd's data, each node's data directory and the logs").default("./cluster-data"))
    .addOption(
      new Option("--port <port>", "the first node's port; node i listens on port + i - 1")
        .default(8080)
        .argParser(integer(1, 65535)),
    )
    .addOption(new Option("--shards <n>", "the shards a new cluster is founded with").default(8).argParser(integer(1, 4096)))
    .addOption(new Option("--workers <n>", "worker processes per node").default(1).argParser(integer(1, 256)))
    .action(async (options: Record<string, unknown>, command: Command) => {
      try {
        const up = {
          nodes: options.nodes as number,
          dataDir: options.dataDir as string,
          port: options.port as number,
          shards: options.shards as number,
          workers: options.workers as number,
        };
        process.exitCode = await clusterUp(up, writeLine(process.stdout));
      } catch (error) {
        if (error instanceof OperatorError) fail(command, error.message, error.exitCode);
        throw error;
      }
    });
}
