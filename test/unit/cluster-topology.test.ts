import { describe, expect, it } from "vitest";
import { SLOT_COUNT, slotOf, slotRanges } from "../../schema/placement.js";
import { decodeMap } from "../../server/cluster/map-store.js";
import {
  assertValidMap,
  firstNodeShards,
  InvalidClusterMapError,
  isClusterName,
  isNodeId,
  mapProblem,
  ownerOf,
  rebalancePlan,
  topologyAnswer,
  type ClusterMap,
  type ShardAssignment,
  type ShardMove,
} from "../../server/cluster/topology.js";

/** A valid map of `owners.length` even shards, shard i owned by owners[i]. */
function mapOf(owners: string[], version = 7): ClusterMap {
  return {
    version,
    shards: slotRanges(owners.length).map((slots, shard) => ({
      shard,
      slots,
      node: owners[shard]!,
      followers: [],
      epoch: 3,
      state: "active",
    })),
  };
}

function withShard(map: ClusterMap, shard: number, change: Partial<ShardAssignment>): ClusterMap {
  return { ...map, shards: map.shards.map((s) => (s.shard === shard ? { ...s, ...change } : s)) };
}

describe("node ids and cluster names", () => {
  const cases: [string, boolean][] = [
    ["n1", true],
    ["0", true],
    ["node-a", true],
    ["a".repeat(32), true],
    ["a".repeat(33), false],
    ["", false],
    ["-n1", false],
    ["N1", false],
    ["n_1", false],
    ["n.1", false],
    ["n/1", false],
    ["n 1", false],
    ["nœud", false],
  ];
  it.each(cases)("%j → %s", (value, valid) => {
    expect(isNodeId(value)).toBe(valid);
    expect(isClusterName(value)).toBe(valid);
  });
});

describe("mapProblem", () => {
  const good = mapOf(["a", "b", "c", "d"]);
  const cases: [string, ClusterMap, string | undefined][] = [
    ["an even map", good, undefined],
    ["one shard owning every slot", mapOf(["a"]), undefined],
    ["4096 shards of one slot", mapOf(Array.from({ length: SLOT_COUNT }, () => "a")), undefined],
    ["shards listed out of slot order", { ...good, shards: [...good.shards].reverse() }, undefined],
    ["no shards", { version: 1, shards: [] }, "the map has no shards"],
    ["version 0", { ...good, version: 0 }, "version 0 is not a positive integer"],
    ["a fractional version", { ...good, version: 1.5 }, "version 1.5 is not a positive integer"],
    ["a gap", withShard(good, 1, { slots: { from: 1025, to: 2047 } }), "slots 1024-1024 have no shard"],
    ["an overlap", withShard(good, 1, { slots: { from: 1023, to: 2047 } }), "shard 1 overlaps slot 1023"],
    ["the last slots missing", withShard(good, 3, { slots: { from: 3072, to: 4094 } }), "slots 4095-4095 have no shard"],
    [
      "a range past the slot space",
      withShard(good, 3, { slots: { from: 3072, to: 4096 } }),
      "shard 3 has slots 3072-4096, not a range within 0-4095",
    ],
    ["a reversed range", withShard(good, 0, { slots: { from: 10, to: 5 } }), "shard 0 has slots 10-5, not a range within 0-4095"],
    [
      "a negative slot",
      withShard(good, 0, { slots: { from: -1, to: 1023 } }),
      "shard 0 has slots -1-1023, not a range within 0-4095",
    ],
    ["a shard id twice", withShard(good, 1, { shard: 0 }), "shard 0 appears twice"],
    ["a negative shard id", withShard(good, 1, { shard: -1 }), "shard id -1 is not a non-negative integer"],
    ["a bad owner", withShard(good, 2, { node: "Bad" }), 'shard 2 names owner "Bad", not a node id'],
    ["a bad follower", withShard(good, 2, { followers: ["b", "x y"] }), 'shard 2 names follower "x y", not a node id'],
    ["the owner as follower", withShard(good, 2, { followers: ["c"] }), "shard 2 names its owner c as a follower"],
    ["a follower twice", withShard(good, 2, { followers: ["a", "a"] }), "shard 2 names a follower twice"],
    ["epoch 0", withShard(good, 2, { epoch: 0 }), "shard 2 has epoch 0, not a positive integer"],
    ["an unknown state", withShard(good, 2, { state: "gone" as "active" }), 'shard 2 has state "gone"'],
  ];
  it.each(cases)("%s", (_, map, want) => {
    expect(mapProblem(map)).toBe(want);
    if (want === undefined) expect(assertValidMap(map)).toBe(map);
    else expect(() => assertValidMap(map)).toThrow(new InvalidClusterMapError(`invalid cluster map: ${want}`));
  });
});

describe("ownerOf", () => {
  const map = mapOf(["a", "b", "c"]);
  it.each([
    [0, 0],
    [1364, 0],
    [1365, 1],
    [2729, 1],
    [2730, 2],
    [4095, 2],
  ])("slot %i is in shard %i", (slot, shard) => {
    expect(ownerOf(map, slot).shard).toBe(shard);
  });

  it("agrees with the slot of a key", () => {
    const slot = slotOf("account", "alice");
    const owner = ownerOf(map, slot);
    expect(owner.slots.from).toBeLessThanOrEqual(slot);
    expect(owner.slots.to).toBeGreaterThanOrEqual(slot);
  });

  it.each([-1, 4096, 1.5, Number.NaN])("refuses slot %s", (slot) => {
    expect(() => ownerOf(map, slot)).toThrow(RangeError);
  });
});

describe("firstNodeShards", () => {
  it("gives the founding node every shard of its manifest, in its ranges", () => {
    const ranges = slotRanges(8);
    const shards = firstNodeShards("n1", ranges);
    expect(shards).toEqual(ranges.map((slots, shard) => ({ shard, slots, node: "n1", followers: [], state: "active" })));
    expect(mapProblem({ version: 1, shards: shards.map((s) => ({ ...s, epoch: 1 })) })).toBeUndefined();
  });
});

describe("topologyAnswer", () => {
  it("names each shard's owner and its url, null while the owner is not alive", () => {
    const map = mapOf(["a", "b"], 42);
    expect(
      topologyAnswer(map, [
        { node: "a", url: "http://10.0.0.1:8080" },
        { node: "z", url: "http://z" },
      ]),
    ).toEqual({
      version: 42,
      slots: 4096,
      shards: [
        { shard: 0, slots: { from: 0, to: 2047 }, node: "a", url: "http://10.0.0.1:8080" },
        { shard: 1, slots: { from: 2048, to: 4095 }, node: "b", url: null },
      ],
    });
  });
});

describe("rebalancePlan", () => {
  const owners = (map: ClusterMap, moves: ShardMove[]) => {
    const after = new Map(map.shards.map((s) => [s.shard, s.node]));
    for (const move of moves) {
      expect(after.get(move.shard)).toBe(move.from);
      after.set(move.shard, move.to);
    }
    const counts: Record<string, number> = {};
    for (const node of after.values()) counts[node] = (counts[node] ?? 0) + 1;
    return counts;
  };

  const cases: [string, { map: ClusterMap; live: string[]; want: ShardMove[] }][] = [
    ["one node keeps everything", { map: mapOf(["a", "a", "a"]), live: ["a"], want: [] }],
    ["no live nodes, no moves", { map: mapOf(["a", "a"]), live: [], want: [] }],
    [
      "8 shards over a new second node: 4 move",
      {
        map: mapOf(Array(8).fill("a")),
        live: ["a", "b"],
        want: [4, 5, 6, 7].reverse().map((shard) => ({ shard, from: "a", to: "b" })),
      },
    ],
    [
      "8 shards over 3 nodes: the founder keeps 3",
      {
        map: mapOf(Array(8).fill("a")),
        live: ["c", "a", "b"],
        want: [
          { shard: 7, from: "a", to: "b" },
          { shard: 6, from: "a", to: "b" },
          { shard: 5, from: "a", to: "b" },
          { shard: 4, from: "a", to: "c" },
          { shard: 3, from: "a", to: "c" },
        ],
      },
    ],
    ["already fair", { map: mapOf(["a", "b", "a", "b", "c"]), live: ["a", "b", "c"], want: [] }],
    [
      "the remainder stays with the most loaded: 5 shards, 2 nodes, a has 4",
      { map: mapOf(["a", "a", "a", "a", "b"]), live: ["a", "b"], want: [{ shard: 3, from: "a", to: "b" }] },
    ],
    [
      "a dead node's shards stay put",
      { map: mapOf(["a", "a", "a", "d", "d"]), live: ["a", "b"], want: [{ shard: 2, from: "a", to: "b" }] },
    ],
    [
      "busy shards stay put; the plan gives what it can",
      {
        map: withShard(withShard(mapOf(["a", "a", "a", "a"]), 3, { state: "moving" }), 2, { state: "splitting" }),
        live: ["a", "b", "c"],
        want: [
          { shard: 1, from: "a", to: "b" },
          { shard: 0, from: "a", to: "c" },
        ],
      },
    ],
    ["fewer shards than nodes", { map: mapOf(["a", "a"]), live: ["a", "b", "c"], want: [{ shard: 1, from: "a", to: "b" }] }],
    [
      "a node named twice counts once",
      { map: mapOf(["a", "a"]), live: ["a", "b", "b"], want: [{ shard: 1, from: "a", to: "b" }] },
    ],
  ];
  it.each(cases)("%s", (_, { map, live, want }) => {
    const plan = rebalancePlan(map, live);
    expect(plan).toEqual(want);
    expect(rebalancePlan(map, [...live].reverse())).toEqual(plan);
  });

  it("always ends fair over many uneven maps, and moving the plan leaves nothing to do", () => {
    const nodes = ["a", "b", "c", "d", "e"];
    for (let seed = 1; seed <= 200; seed++) {
      const shardCount = 1 + (seed % 17);
      const live = nodes.slice(0, 1 + (seed % nodes.length));
      const map = mapOf(Array.from({ length: shardCount }, (_, i) => live[(seed * (i + 3)) % live.length]!));
      const plan = rebalancePlan(map, live);
      const counts = Object.values(owners(map, plan));
      expect(Math.max(...counts) - Math.min(...(counts.length < live.length ? [0] : counts))).toBeLessThanOrEqual(1);
      const moved = mapOf([]);
      moved.shards = map.shards.map((s) => ({ ...s, node: plan.find((m) => m.shard === s.shard)?.to ?? s.node }));
      expect(rebalancePlan(moved, live)).toEqual([]);
    }
  });
});

describe("decodeMap", () => {
  const stored = (shards: unknown) => JSON.stringify({ shards });
  const valid = mapOf(["a", "b"]).shards;

  it("takes the version from the revision and stamps a pending epoch with it", () => {
    const map = decodeMap(stored(valid.map((s, i) => ({ ...s, epoch: i === 0 ? null : 5 }))), 9);
    expect(map.version).toBe(9);
    expect(map.shards.map((s) => s.epoch)).toEqual([9, 5]);
  });

  it.each([
    ["not JSON", "{", "invalid cluster map: not JSON"],
    ["not an object", "[]", "invalid cluster map: not a map of shards"],
    ["null", "null", "invalid cluster map: not a map of shards"],
    ["shards not an array", JSON.stringify({ shards: {} }), "invalid cluster map: not a map of shards"],
    ["a shard without slots", stored([{ ...valid[0], slots: undefined }]), "invalid cluster map: not a map of shards"],
    ["slots as strings", stored([{ ...valid[0], slots: { from: "0", to: "4095" } }]), "invalid cluster map: not a map of shards"],
    ["a numeric follower", stored([{ ...valid[0], followers: [1] }]), "invalid cluster map: not a map of shards"],
    ["an epoch as a string", stored([{ ...valid[0], epoch: "1" }]), "invalid cluster map: not a map of shards"],
    ["valid shape, a gap", stored([valid[0]]), "invalid cluster map: slots 2048-4095 have no shard"],
  ])("refuses %s", (_, value, message) => {
    expect(() => decodeMap(value, 3)).toThrow(new InvalidClusterMapError(message));
  });
});
