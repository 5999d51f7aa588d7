import { afterEach, describe, expect, it } from "vitest";
import { slotRanges } from "../../schema/placement.js";
import { ClusterMember } from "../../server/cluster/cluster-member.js";
import { clusterCursorSecret } from "../../server/cluster/cursor-secret.js";
import { CLUSTER_KEYS } from "../../server/cluster/etcd-client.js";
import { listMoves, saveMove, StaleMoveError, type MoveRecord } from "../../server/cluster/moves-store.js";
import { NodeIdTakenError } from "../../server/cluster/node-registration.js";
import { EtcdClients, eventually } from "../support/cluster-etcd.js";

const shared = EtcdClients.forFile();
const members: ClusterMember[] = [];

afterEach(async () => {
  await Promise.all(members.splice(0).map((member) => member.leave()));
});

async function join(cluster: string, node: string, shards = 8): Promise<ClusterMember> {
  const member = await ClusterMember.join({
    etcd: [shared.etcd.url],
    cluster,
    self: { node, url: `http://${node}.test` },
    leaseTtlSeconds: 2,
    ranges: slotRanges(shards),
    coordinator: { elected: () => undefined, deposed: () => undefined },
  });
  members.push(member);
  return member;
}

describe("joining a cluster", () => {
  it("the first node founds the map with its own shards; a later node joins owning nothing", async () => {
    const name = shared.clients.newCluster();
    const first = await join(name, "n1");
    expect(first.view.map!.shards.map((s) => [s.shard, s.slots, s.node])).toEqual(
      slotRanges(8).map((slots, shard) => [shard, slots, "n1"]),
    );
    const second = await join(name, "n2", 3);
    expect(second.view.map).toEqual(first.view.map);
    await eventually("both see both nodes", () => first.view.liveNodes.length === 2 && second.view.liveNodes.length === 2);
    expect(second.view.liveNodes).toEqual([
      { node: "n1", url: "http://n1.test" },
      { node: "n2", url: "http://n2.test" },
    ]);
    expect(second.cursorSecret.equals(first.cursorSecret)).toBe(true);
    await eventually("one of them coordinates", () => first.candidate.isCoordinator !== second.candidate.isCoordinator);
  });

  it("refuses a node id that a live node holds, and keeps the live one", async () => {
    const name = shared.clients.newCluster();
    const first = await join(name, "n1");
    await expect(join(name, "n1")).rejects.toThrow(NodeIdTakenError);
    expect(first.view.liveNodes).toEqual([{ node: "n1", url: "http://n1.test" }]);
  });

  it("leaving removes the node at once and hands the coordinator on", async () => {
    const name = shared.clients.newCluster();
    const first = await join(name, "n1");
    await eventually("n1 coordinates", () => first.candidate.isCoordinator);
    const second = await join(name, "n2");
    await first.leave();
    members.splice(members.indexOf(first), 1);
    await eventually("n2 sees n1 gone", () => second.view.liveNodes.length === 1);
    await eventually("n2 coordinates", () => second.candidate.isCoordinator);
  });
});

describe("the cursor secret", () => {
  it("is created once, 32 random bytes, and the same for every node", async () => {
    const name = shared.clients.newCluster();
    const secrets = await Promise.all([1, 2, 3].map(() => clusterCursorSecret(shared.clients.connect(name).cluster)));
    expect(secrets[0]).toHaveLength(32);
    for (const secret of secrets) expect(secret.equals(secrets[0]!)).toBe(true);
    const other = await clusterCursorSecret(shared.clients.connect(shared.clients.newCluster()).cluster);
    expect(other.equals(secrets[0]!)).toBe(false);
  });
});

describe("move records", () => {
  const move: MoveRecord = {
    id: "m1",
    kind: "move",
    shard: 3,
    newShard: null,
    slots: { from: 1536, to: 2047 },
    from: "n1",
    to: "n2",
    state: "copying",
    detail: null,
    createdAt: "2026-12-02T00:00:00.000Z",
    updatedAt: "2026-12-02T00:00:00.000Z",
  };

  it("are created once and advanced by compare-and-set", async () => {
    const { cluster } = shared.clients.connect(shared.clients.newCluster());
    const created = await saveMove(cluster, move, 0);
    await expect(saveMove(cluster, { ...move, state: "aborted" }, 0)).rejects.toThrow(StaleMoveError);
    const advanced = await saveMove(cluster, { ...move, state: "catching-up" }, created.revision);
    await expect(saveMove(cluster, { ...move, state: "aborted" }, created.revision)).rejects.toThrow(StaleMoveError);
    expect(await listMoves(cluster)).toEqual([advanced]);
    expect(JSON.parse((await cluster.get(CLUSTER_KEYS.move("m1")).string())!)).toEqual({ ...move, state: "catching-up" });
  });

  it("lists every move of the cluster and no other cluster's", async () => {
    const name = shared.clients.newCluster();
    const { cluster } = shared.clients.connect(name);
    const saved = [await saveMove(cluster, move, 0), await saveMove(cluster, { ...move, id: "m2", shard: 4 }, 0)];
    await saveMove(shared.clients.connect(shared.clients.newCluster()).cluster, { ...move, id: "m3" }, 0);
    expect(await listMoves(cluster)).toEqual(saved);
  });
});
