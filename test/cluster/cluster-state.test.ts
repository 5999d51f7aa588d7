import { describe, expect, it } from "vitest";
import { ClusterState, type ClusterSnapshot } from "../../server/cluster/cluster-state.js";
import type { ShardAssignment } from "../../server/cluster/topology.js";
import { ShardFrozenError } from "../../server/storage/storage-errors.js";

const placement = { shard: 0, slots: { from: 0, to: 2047 } };

function snapshot(version: number, shard0: Partial<ShardAssignment>): ClusterSnapshot {
  const shards: ShardAssignment[] = [
    { shard: 0, slots: placement.slots, node: "n1", followers: ["n3", "n2"], epoch: 5, state: "active", ...shard0 },
    { shard: 1, slots: { from: 2048, to: 4095 }, node: "n2", followers: ["n1"], epoch: 7, state: "active" },
  ];
  const nodes = ["n1", "n2", "n3"].map((node) => ({ node, url: `http://${node}.test` }));
  return { cluster: "test", self: nodes[0]!, map: { version, shards }, nodes, leaseHeld: true, cursorSecret: "00" };
}

describe("a worker's write guard", () => {
  it("passes a batch only while the map names this node the owner at the file's epoch, with the file's followers in any order", () => {
    const state = new ClusterState(snapshot(10, {}));
    const fence = { epoch: 5, frozen: false, followers: ["n2", "n3"] };
    expect(() => state.guard(placement, fence)).not.toThrow();
    const refusals = [
      { ...fence, frozen: true },
      { ...fence, epoch: 4 },
      { ...fence, followers: ["n2"] },
      { ...fence, followers: [] },
      { ...fence, followers: ["n2", "n3", "n4"] },
    ];
    for (const refused of refusals) expect(() => state.guard(placement, refused)).toThrow(ShardFrozenError);
    expect(() => state.guard({ shard: 1, slots: { from: 2048, to: 4095 } }, { ...fence, epoch: 7, followers: ["n1"] })).toThrow(
      /not this node's at epoch 7/,
    );
  });

  it("follows the map it is sent: a follower dropped, then the shard given away", () => {
    const state = new ClusterState(snapshot(10, {}));
    const fence = { epoch: 5, frozen: false, followers: ["n2", "n3"] };
    state.update(snapshot(11, { followers: ["n2"] }));
    expect(() => state.guard(placement, fence)).toThrow(/followers are n2, n3 in its file, not as in map version 11/);
    expect(() => state.guard(placement, { ...fence, followers: ["n2"] })).not.toThrow();
    state.update(snapshot(12, { node: "n2", followers: ["n1"], epoch: 12 }));
    expect(() => state.guard(placement, { ...fence, followers: ["n2"] })).toThrow(/not this node's at epoch 5 in map version 12/);
  });
});
