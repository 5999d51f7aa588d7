import { describe, expect, it } from "vitest";
import { slotRanges } from "../../schema/placement.js";
import { CLUSTER_KEYS } from "../../server/cluster/etcd-client.js";
import {
  createMapIfAbsent,
  MissingMapError,
  readMap,
  StaleMapError,
  updateMap,
  writeMap,
  type ShardPlacement,
} from "../../server/cluster/map-store.js";
import { firstNodeShards, InvalidClusterMapError, type ClusterMap } from "../../server/cluster/topology.js";
import { EtcdClients } from "../support/cluster-etcd.js";

const shared = EtcdClients.forFile();

const founded = (node = "n1", shards = 4) => firstNodeShards(node, slotRanges(shards));

function moveShard(map: ClusterMap, shard: number, node: string): ShardPlacement[] {
  return map.shards.map((s) => (s.shard === shard ? { ...s, node } : s));
}

describe("creating the map", () => {
  it("writes the founder's shards with version and every epoch at the revision of the write", async () => {
    const { cluster } = shared.clients.connect(shared.clients.newCluster());
    const map = await createMapIfAbsent(cluster, founded());
    const kv = (await cluster.get(CLUSTER_KEYS.map).exec()).kvs[0]!;
    expect(map.version).toBe(Number(kv.mod_revision));
    expect(map.shards).toEqual(founded().map((s) => ({ ...s, epoch: map.version })));
    expect(await readMap(cluster)).toEqual(map);
  });

  it("creates one map when several nodes found the cluster at once; all get that map", async () => {
    const name = shared.clients.newCluster();
    const maps = await Promise.all(
      ["n1", "n2", "n3", "n4"].map((node) => createMapIfAbsent(shared.clients.connect(name).cluster, founded(node))),
    );
    const owners = new Set(maps.map((map) => map.shards[0]!.node));
    expect(owners.size).toBe(1);
    for (const map of maps) expect(map).toEqual(maps[0]);
    expect(await readMap(shared.clients.connect(name).cluster)).toEqual(maps[0]);
  });

  it("refuses an invalid map and writes nothing", async () => {
    const { cluster } = shared.clients.connect(shared.clients.newCluster());
    const gap = founded().slice(1);
    await expect(createMapIfAbsent(cluster, gap)).rejects.toThrow(InvalidClusterMapError);
    expect(await readMap(cluster)).toBeUndefined();
  });
});

describe("compare-and-set of the map", () => {
  it("a new owner takes the revision of the write as its epoch; the others keep theirs", async () => {
    const { cluster } = shared.clients.connect(shared.clients.newCluster());
    const first = await createMapIfAbsent(cluster, founded());
    const second = await writeMap(cluster, first, moveShard(first, 2, "n2"));
    expect(second.version).toBeGreaterThan(first.version);
    expect(second.shards.map((s) => [s.node, s.epoch])).toEqual([
      ["n1", first.version],
      ["n1", first.version],
      ["n2", second.version],
      ["n1", first.version],
    ]);
    const third = await writeMap(
      cluster,
      second,
      second.shards.map((s) => ({ ...s, state: "moving" })),
    );
    expect(third.shards.map((s) => s.epoch)).toEqual(second.shards.map((s) => s.epoch));
    expect(await readMap(cluster)).toEqual(third);
  });

  it("refuses a stale write (an old version) and leaves the map as it is", async () => {
    const { cluster } = shared.clients.connect(shared.clients.newCluster());
    const first = await createMapIfAbsent(cluster, founded());
    const second = await writeMap(cluster, first, moveShard(first, 0, "n2"));
    const stale = writeMap(cluster, first, moveShard(first, 1, "n3"));
    await expect(stale).rejects.toThrow(StaleMapError);
    await expect(stale).rejects.toMatchObject({ expected: first.version, current: second.version });
    expect(await readMap(cluster)).toEqual(second);
  });

  it("of two writers that read the same map exactly one wins", async () => {
    const name = shared.clients.newCluster();
    const first = await createMapIfAbsent(shared.clients.connect(name).cluster, founded());
    const results = await Promise.allSettled([
      writeMap(shared.clients.connect(name).cluster, first, moveShard(first, 0, "n2")),
      writeMap(shared.clients.connect(name).cluster, first, moveShard(first, 1, "n3")),
    ]);
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r) => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.reason).toBeInstanceOf(StaleMapError);
    expect(await readMap(shared.clients.connect(name).cluster)).toEqual(won[0]!.value);
  });

  it("refuses an invalid change and writes nothing", async () => {
    const { cluster } = shared.clients.connect(shared.clients.newCluster());
    const first = await createMapIfAbsent(cluster, founded());
    const overlap = first.shards.map((s) => (s.shard === 1 ? { ...s, slots: { from: 0, to: s.slots.to } } : s));
    await expect(writeMap(cluster, first, overlap)).rejects.toThrow(InvalidClusterMapError);
    expect(await readMap(cluster)).toEqual(first);
  });
});

/** Two updates of one new cluster's map at once, each noting the version it was called with. */
async function concurrentUpdates() {
  const name = shared.clients.newCluster();
  const start = await createMapIfAbsent(shared.clients.connect(name).cluster, founded());
  const seen: { writer: string; version: number }[] = [];
  const change = (writer: string, shard: number, node: string) => (current: ClusterMap) => {
    seen.push({ writer, version: current.version });
    return moveShard(current, shard, node);
  };
  const [a, b] = await Promise.all([
    updateMap(shared.clients.connect(name).cluster, change("a", 0, "n2")),
    updateMap(shared.clients.connect(name).cluster, change("b", 3, "n3")),
  ]);
  return { name, start, seen, a, b, overlapped: seen.filter((s) => s.version === start.version).length === 2 };
}

type ConcurrentRun = Awaited<ReturnType<typeof concurrentUpdates>>;

describe("updateMap", () => {
  it("two concurrent updates: one wins first, the other retries on the new map, both land", async () => {
    // The two must both read the starting map before either writes; on a loaded machine one can
    // finish before the other starts, so a run where they did not overlap is tried again.
    let run: ConcurrentRun | undefined;
    for (let attempt = 0; attempt < 5 && !run?.overlapped; attempt++) run = await concurrentUpdates();
    expect(run?.overlapped, "the two updates overlapped in one of 5 tries").toBe(true);
    const { name, start, seen, a, b } = run as ConcurrentRun;

    const [winner, loser] = a.version < b.version ? [a, b] : [b, a];
    const loserName = loser === a ? "a" : "b";
    expect(seen.filter((s) => s.writer === loserName).map((s) => s.version)).toEqual([start.version, winner.version]);
    expect(seen).toHaveLength(3);
    const final = await readMap(shared.clients.connect(name).cluster);
    expect(final).toEqual(loser);
    expect(final!.shards.map((s) => s.node)).toEqual(["n2", "n1", "n1", "n3"]);
  });

  it("many concurrent updates all land, each once", async () => {
    const name = shared.clients.newCluster();
    await createMapIfAbsent(shared.clients.connect(name).cluster, founded("n1", 8));
    const calls = new Map<number, number>();
    await Promise.all(
      Array.from({ length: 8 }, (_, shard) =>
        updateMap(shared.clients.connect(name).cluster, (current) => {
          calls.set(shard, (calls.get(shard) ?? 0) + 1);
          return moveShard(current, shard, `w${shard}`);
        }),
      ),
    );
    const final = await readMap(shared.clients.connect(name).cluster);
    expect(final!.shards.map((s) => s.node)).toEqual(Array.from({ length: 8 }, (_, shard) => `w${shard}`));
    expect([...calls.values()].reduce((a, b) => a + b)).toBeGreaterThan(8);
  });

  it("writes nothing when the change has nothing to change", async () => {
    const { cluster } = shared.clients.connect(shared.clients.newCluster());
    const first = await createMapIfAbsent(cluster, founded());
    expect(await updateMap(cluster, () => undefined)).toEqual(first);
    expect((await readMap(cluster))!.version).toBe(first.version);
  });

  it("fails with MissingMapError when the cluster has no map", async () => {
    const { cluster } = shared.clients.connect(shared.clients.newCluster());
    await expect(updateMap(cluster, () => [])).rejects.toThrow(MissingMapError);
  });
});
