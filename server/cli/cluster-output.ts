import type { components } from "../../client/generated/openapi.js";
import { alignedTable } from "./operator-output.js";

export type ClusterStatus = components["schemas"]["ClusterStatus"];
export type Move = components["schemas"]["Move"];

export function isFinished(move: Move): boolean {
  return move.state === "done" || move.state === "aborted";
}

/**
 * What a move or split does, in words.
 *
 * @example
 * move m-00lx3k2a1-9f0e1d of shard 3 from n1 to n2
 * split m-00lx3k2b7-11aa02 of shard 5 on n1 into shards 5 and 8
 */
function describeMove(move: Move): string {
  return move.kind === "split"
    ? `split ${move.id} of shard ${move.shard} on ${move.from} into shards ${move.shard} and ${move.newShard}`
    : `move ${move.id} of shard ${move.shard} from ${move.from} to ${move.to}`;
}

/** A move and the state it has reached, with what it waits for or why it was aborted. */
export function moveLine(move: Move): string {
  return `${describeMove(move)}: ${move.state}${move.detail ? ` (${move.detail})` : ""}`;
}

const list = (numbers: number[]) => (numbers.length > 0 ? numbers.join(",") : "-");

/** A shard's followers with how far each is behind: `n2 lag 0, n3 lag ?` (`?`: it did not answer; `seeding`: not in sync yet). */
function followersText(shard: ClusterStatus["shards"][number]): string {
  if (shard.followers.length === 0) return "-";
  return shard.followers
    .map((node) => {
      const copy = shard.replication.find((entry) => entry.node === node);
      if (copy?.synced === false) return `${node} seeding`;
      return `${node} lag ${copy?.lag ?? "?"}`;
    })
    .join(", ");
}

/**
 * `apostate cluster status` as text: a heading, the nodes, the shards and the moves in progress
 * (finished moves stay recorded in etcd; only their number is shown).
 *
 * @example
 * cluster demo: map version 57, coordinator n1, answered by n2
 *
 * NODE  ALIVE  URL                    SHARDS
 * n1    yes    http://127.0.0.1:8080  0,1,2
 *
 * SHARD  SLOTS     NODE  EPOCH  STATE   FOLLOWERS
 * 0      0-511     n1    12     active  n2 lag 0
 *
 * no moves in progress (5 finished)
 */
export function clusterReport(status: ClusterStatus, url: string): string {
  if (status.cluster === null) return `${url} runs on its own, not in a cluster (apostate shards lists its shards)`;
  const heading = `cluster ${status.cluster}: map version ${status.mapVersion}, coordinator ${status.coordinator ?? "none"}, answered by ${status.node}`;
  const nodes = alignedTable(
    ["NODE", "ALIVE", "URL", "SHARDS"],
    status.nodes.map((node) => [node.node, node.alive ? "yes" : "NO", node.url ?? "-", list(node.shards)]),
  );
  const shards = alignedTable(
    ["SHARD", "SLOTS", "NODE", "EPOCH", "STATE", "FOLLOWERS"],
    status.shards.map((shard) => [
      String(shard.shard),
      `${shard.slots.from}-${shard.slots.to}`,
      shard.node,
      String(shard.epoch),
      shard.state,
      followersText(shard),
    ]),
  );
  const running = status.moves.filter((move) => !isFinished(move));
  const finished = `${status.moves.length - running.length} finished`;
  const moves =
    running.length === 0
      ? `no moves in progress (${finished})`
      : alignedTable(
          ["MOVE", "KIND", "SHARD", "FROM", "TO", "STATE", "DETAIL"],
          running.map((move) => [
            move.id,
            move.kind,
            move.kind === "split" ? `${move.shard}→${move.newShard}` : String(move.shard),
            move.from,
            move.to,
            move.state,
            move.detail ?? "",
          ]),
        ) + `\n(${finished})`;
  return [heading, nodes, shards, moves].join("\n\n");
}
