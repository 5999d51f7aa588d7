import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IncrementLoad } from "../support/increment-load.js";
import { TestCluster, type ClusterAnswer } from "../support/test-cluster.js";

/*
 * The history holds whatever dies mid-move. Three nodes: n1 founds the cluster and is its
 * coordinator; a rebalance gives n2 and n3 shards of their own, so a move from n2 to n3 has a
 * source, a target and a coordinator that are three different processes. For each state a move
 * records and each of the three roles, the move is held at that state (a test hook), the node
 * is killed with `kill -9` and restarted, and the move let go, all under a steady load of keyed
 * increments through every node. Afterwards every acknowledged increment is there exactly once.
 */

const STATES = ["copying", "catching-up", "frozen", "switched"] as const;
const ROLES = ["source", "target", "coordinator"] as const;

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 3, shards: 6, testHooks: true });
  await cluster.rebalance("n1");
}, 180_000);

afterAll(() => cluster?.destroy());

/** A shard that `from` owns now. */
function shardOf(status: ClusterAnswer, from: string): number {
  const shard = status.shards.find((entry) => entry.node === from && entry.state === "active");
  if (!shard) throw new Error(`node ${from} owns no shard: ${JSON.stringify(status.shards)}`);
  return shard.shard;
}

describe("kill -9 during a move", () => {
  it.each(ROLES.flatMap((role) => STATES.map((state) => [role, state] as const)))(
    "of the %s at %s loses and doubles nothing",
    async (role, state) => {
      const status = await cluster.status("n1");
      const coordinator = status.coordinator as string;
      // Source and target are the two nodes that are not the coordinator, whichever that is now;
      // the one with more shards gives one, so moves go back and forth and neither runs out.
      const owned = (id: string) => status.shards.filter((entry) => entry.node === id).length;
      const [source, target] = cluster.ids.filter((id) => id !== coordinator).sort((a, b) => owned(b) - owned(a)) as [
        string,
        string,
      ];
      const shard = shardOf(status, source);
      const victim = role === "source" ? source : role === "target" ? target : coordinator;

      const load = IncrementLoad.start({ urls: () => cluster.urls(), counters: 40, concurrency: 6 });
      await cluster.pauseMovesAt(state);
      const started = await cluster.admin<{ id: string }>(coordinator, "POST", "/admin/cluster/moves", { shard, to: target });
      expect(started.status).toBe(202);
      await cluster.waitForMove(coordinator, started.body.id, state);

      await cluster.crash(victim);
      await sleep(500);
      await cluster.startNode(victim);
      await cluster.pauseMovesAt(undefined);
      const survivor = cluster.ids.find((id) => id !== victim) as string;
      const finished = await cluster
        .waitForMove(survivor, started.body.id, "done", 90_000)
        .catch(async () => cluster.waitForMove(survivor, started.body.id, "aborted", 1_000));
      expect(["done", "aborted"]).toContain(finished.state);

      await sleep(500);
      await load.stop();
      expect(load.acknowledged).toBeGreaterThan(0);
      await cluster.expectHistoryHolds(load, survivor);

      const after = await cluster.status(survivor);
      const owner = after.shards.find((entry) => entry.shard === shard);
      expect(owner?.node).toBe(finished.state === "done" ? target : source);
      expect(owner?.state).toBe("active");
    },
    180_000,
  );
});
