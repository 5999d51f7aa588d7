import { clusterReport, moveLine, type Move } from "./cluster-output.js";
import { EXIT_CODES } from "./exit-codes.js";
import { waitForMoves } from "./move-watch.js";
import { jsonOrText, type CommandResult } from "./operator-commands.js";
import type { Remote } from "./remote-request.js";

/** What the `cluster` commands are told besides their own arguments. */
export interface ClusterCommandConfig {
  /** The node asked, for messages. */
  url: string;
  json: boolean;
  /** Follow the moves until each is done or aborted. */
  wait: boolean;
  /** Where `wait` reports each state a move reaches (stderr, so stdout stays the result). */
  report: (line: string) => void;
}

/** `apostate cluster status`: nodes, shards and moves in progress; `--json` for the raw answer. */
export async function statusCommand(admin: Remote, config: ClusterCommandConfig): Promise<CommandResult> {
  const status = await admin.call(() => admin.api.GET("/admin/cluster"));
  return { output: jsonOrText(config, status, clusterReport(status, config.url)), exitCode: EXIT_CODES.ok };
}

/** `apostate cluster move --shard N --to NODE [--wait]`. */
export async function moveCommand(
  admin: Remote,
  config: ClusterCommandConfig,
  shard: number,
  to: string,
): Promise<CommandResult> {
  const move = await admin.call(() => admin.api.POST("/admin/cluster/moves", { body: { shard, to } }));
  return finish(admin, config, [move], ([ended]) => ended);
}

/** `apostate cluster split --shard N [--wait]`. */
export async function splitCommand(admin: Remote, config: ClusterCommandConfig, shard: number): Promise<CommandResult> {
  const split = await admin.call(() => admin.api.POST("/admin/cluster/splits", { body: { shard } }));
  return finish(admin, config, [split], ([ended]) => ended);
}

/** `apostate cluster rebalance [--wait]`: the moves after which every live node owns a fair share. */
export async function rebalanceCommand(admin: Remote, config: ClusterCommandConfig): Promise<CommandResult> {
  const { moves } = await admin.call(() => admin.api.POST("/admin/cluster/rebalance"));
  return finish(admin, config, moves, (ended) => ({ moves: ended }));
}

/**
 * The moves as started, or with `wait` as they ended: exit code 0, or 4 (refused) when one was
 * aborted, with its detail in the output.
 */
async function finish(
  admin: Remote,
  config: ClusterCommandConfig,
  started: Move[],
  answer: (moves: Move[]) => unknown,
): Promise<CommandResult> {
  let moves = started;
  if (config.wait) {
    for (const move of started) config.report(moveLine(move));
    moves = await waitForMoves(admin, started, (move) => config.report(moveLine(move)));
  }
  const text = moves.length === 0 ? "the cluster is balanced already: no moves" : moves.map(moveLine).join("\n");
  return {
    output: jsonOrText(config, answer(moves), text),
    exitCode: moves.some((move) => move.state === "aborted") ? EXIT_CODES.refused : EXIT_CODES.ok,
  };
}
