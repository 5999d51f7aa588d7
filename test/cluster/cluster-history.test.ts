import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IncrementLoad } from "../support/increment-load.js";
import { TestCluster } from "../support/test-cluster.js";

/*
 * The history checker's load runs through every node while the cluster grows from one node to
 * three, rebalances, and splits a shard: every acknowledged increment must be there exactly once.
 */

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 1, shards: 4 });
}, 120_000);

afterAll(() => cluster?.destroy());

describe("under a steady load of keyed increments", () => {
  it("grows from one node to three, rebalances and splits, losing and doubling nothing", async () => {
    const load = IncrementLoad.start({ urls: () => cluster.urls(), counters: 50, concurrency: 8 });
    await sleep(1_000);
    await cluster.addNode("n2");
    await cluster.addNode("n3");

    const rebalance = await cluster.admin<{ moves: { id: string }[] }>("n2", "POST", "/admin/cluster/rebalance");
    expect(rebalance.status).toBe(202);
    expect(rebalance.body.moves.length).toBeGreaterThanOrEqual(2);
    for (const move of rebalance.body.moves) await cluster.waitForMove("n3", move.id, "done");
    const balanced = await cluster.status("n1");
    expect(balanced.nodes.map((node) => node.shards.length).sort()).toEqual([1, 1, 2]);

    const split = await cluster.admin<{ id: string; newShard: number }>("n3", "POST", "/admin/cluster/splits", {
      shard: balanced.shards.find((shard) => shard.node === "n3")?.shard,
    });
    expect(split.status).toBe(202);
    await cluster.waitForMove("n1", split.body.id, "done");
    expect((await cluster.status("n2")).shards).toHaveLength(5);

    await sleep(1_000);
    await load.stop();
    expect(load.acknowledged).toBeGreaterThan(200);
    await cluster.expectHistoryHolds(load, "n2");
  }, 240_000);
});
