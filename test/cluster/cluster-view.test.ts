import { afterEach, describe, expect, it } from "vitest";
import { slotRanges } from "../../schema/placement.js";
import { ClusterView, type ClusterChange } from "../../server/cluster/cluster-view.js";
import { CLUSTER_KEYS } from "../../server/cluster/etcd-client.js";
import { createMapIfAbsent, readMap, updateMap } from "../../server/cluster/map-store.js";
import { NodeRegistration } from "../../server/cluster/node-registration.js";
import { firstNodeShards, InvalidClusterMapError, type ClusterMap } from "../../server/cluster/topology.js";
import { EtcdClients, eventually } from "../support/cluster-etcd.js";

const shared = EtcdClients.forFile();
const views: ClusterView[] = [];

afterEach(async () => {
  await Promise.all(views.splice(0).map((view) => view.close()));
});

async function openView(cluster: string): Promise<{ view: ClusterView; changes: ClusterChange[] }> {
  const view = await ClusterView.open(shared.clients.connect(cluster).cluster);
  views.push(view);
  const changes: ClusterChange[] = [];
  view.subscribe((change) => changes.push(change));
  return { view, changes };
}

const mapVersions = (changes: ClusterChange[]) => changes.flatMap((c) => (c.kind === "map" ? [c.map.version] : []));

/** Flips shard `shard` between two owners: every call is a new map. */
const flip = (shard: number) => (current: ClusterMap) =>
  current.shards.map((s) => (s.shard === shard ? { ...s, node: s.node === "n1" ? "n2" : "n1" } : s));

describe("the cluster view", () => {
  it("starts with the map and live nodes that exist, or none", async () => {
    const name = shared.clients.newCluster();
    const { cluster } = shared.clients.connect(name);
    const empty = await openView(name);
    expect(empty.view.map).toBeUndefined();
    expect(empty.view.liveNodes).toEqual([]);

    const map = await createMapIfAbsent(cluster, firstNodeShards("n1", slotRanges(2)));
    await NodeRegistration.start(cluster, { node: "n1", url: "http://one" }, 5);
    const { view } = await openView(name);
    expect(view.map).toEqual(map);
    expect(view.liveNodes).toEqual([{ node: "n1", url: "http://one" }]);

    await eventually(
      "the first view saw both",
      () => empty.view.map?.version === map.version && empty.view.liveNodes.length === 1,
    );
  });

  it("sees every map change, in order, from several writers", async () => {
    const name = shared.clients.newCluster();
    const { cluster } = shared.clients.connect(name);
    await createMapIfAbsent(cluster, firstNodeShards("n1", slotRanges(4)));
    const { view, changes } = await openView(name);
    const written: number[] = [];
    await Promise.all(
      [0, 1, 2, 3].map(async (shard) => {
        const writer = shared.clients.connect(name).cluster;
        for (let i = 0; i < 5; i++) written.push((await updateMap(writer, flip(shard))).version);
      }),
    );
    written.sort((a, b) => a - b);
    await eventually("the view saw the last write", () => view.map?.version === written.at(-1));
    expect(mapVersions(changes)).toEqual(written);
    expect(view.map).toEqual(await readMap(cluster));
  });

  it("sees nodes join and leave", async () => {
    const name = shared.clients.newCluster();
    const { view, changes } = await openView(name);
    const { cluster } = shared.clients.connect(name);
    const one = await NodeRegistration.start(cluster, { node: "n1", url: "http://one" }, 5);
    const two = await NodeRegistration.start(cluster, { node: "n2", url: "http://two" }, 5);
    await eventually("both nodes are live", () => view.liveNodes.length === 2);
    expect(view.liveNodes).toEqual([
      { node: "n1", url: "http://one" },
      { node: "n2", url: "http://two" },
    ]);
    await one.close();
    await eventually("n1 left", () => view.liveNodes.length === 1);
    expect(view.liveNodes).toEqual([{ node: "n2", url: "http://two" }]);
    await two.close();
    await eventually("n2 left", () => view.liveNodes.length === 0);
    expect(changes.filter((c) => c.kind === "nodes").map((c) => c.kind === "nodes" && c.nodes.map((n) => n.node))).toEqual([
      ["n1"],
      ["n1", "n2"],
      ["n2"],
      [],
    ]);
  });

  it("keeps its last valid map when an invalid one is written, and says so", async () => {
    const name = shared.clients.newCluster();
    const { cluster } = shared.clients.connect(name);
    const map = await createMapIfAbsent(cluster, firstNodeShards("n1", slotRanges(2)));
    const { view, changes } = await openView(name);
    await cluster.put(CLUSTER_KEYS.map).value('{"shards": []}');
    await cluster.put(CLUSTER_KEYS.map).value("not json");
    await cluster.put(CLUSTER_KEYS.node("junk")).value("[1]");
    await eventually("two invalid maps reported", () => changes.length === 2);
    expect(changes.map((c) => c.kind === "invalid-map" && c.error)).toEqual([
      new InvalidClusterMapError("invalid cluster map: the map has no shards"),
      new InvalidClusterMapError("invalid cluster map: not JSON"),
    ]);
    expect(view.map).toEqual(map);
    expect(view.liveNodes).toEqual([]);
  });

  it("stops calling a listener once unsubscribed", async () => {
    const name = shared.clients.newCluster();
    const { cluster } = shared.clients.connect(name);
    await createMapIfAbsent(cluster, firstNodeShards("n1", slotRanges(2)));
    const { view } = await openView(name);
    const seen: ClusterChange[] = [];
    const stop = view.subscribe((change) => seen.push(change));
    const first = await updateMap(cluster, flip(0));
    await eventually("the first change arrived", () => seen.length === 1);
    stop();
    const second = await updateMap(cluster, flip(0));
    await eventually("the view has the second map", () => view.map?.version === second.version);
    expect(mapVersions(seen)).toEqual([first.version]);
  });
});

describe("the cluster view while etcd is away", () => {
  it("keeps serving the last map while etcd is stopped, and catches up in order after a restart", async () => {
    const name = shared.clients.newCluster();
    const { cluster } = shared.clients.connect(name);
    await createMapIfAbsent(cluster, firstNodeShards("n1", slotRanges(2)));
    const { view, changes } = await openView(name);
    const before = await updateMap(cluster, flip(0));
    await eventually("the view is current", () => view.map?.version === before.version && view.watching);

    await shared.etcd.stop();
    await eventually("the view noticed", () => !view.watching);
    expect(view.map).toEqual(before);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(view.map).toEqual(before);

    await shared.etcd.start();
    const writer = shared.clients.connect(name).cluster;
    const after: number[] = [];
    for (let i = 0; i < 3; i++) after.push((await updateMap(writer, flip(1))).version);
    await eventually("the view caught up", () => view.map?.version === after.at(-1), 20_000);
    expect(view.watching).toBe(true);
    expect(mapVersions(changes)).toEqual([before.version, ...after]);
    expect(view.map).toEqual(await readMap(writer));
  });

  it("keeps serving the last map while etcd is paused, and sees the next change once it resumes", async () => {
    const name = shared.clients.newCluster();
    const { cluster } = shared.clients.connect(name);
    const start = await createMapIfAbsent(cluster, firstNodeShards("n1", slotRanges(2)));
    const { view, changes } = await openView(name);
    shared.etcd.pause();
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(view.map).toEqual(start);
    } finally {
      shared.etcd.resume();
    }
    const changed = await updateMap(cluster, flip(0));
    await eventually("the view saw the change", () => view.map?.version === changed.version, 20_000);
    expect(mapVersions(changes)).toEqual([changed.version]);
  });
});
