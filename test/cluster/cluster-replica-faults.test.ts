import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../support/cluster-etcd.js";
import { IncrementLoad } from "../support/increment-load.js";
import { copiesAgree, explained, fullyReplicated, historyHoldsAndCopiesAgree, idInShard, putProbe } from "../support/replicas.js";
import { TestCluster, type ClusterAnswer } from "../support/test-cluster.js";
import { failingFsyncEnvironment } from "../support/failing-fsync.js";
import { tempDir } from "../support/temp-dir.js";

/*
 * Replicas under faults that are not a clean death: a follower cut off from its peers while it
 * keeps its lease (its owner must not acknowledge without it; the coordinator must seed its shards
 * elsewhere), a follower that cannot be fenced as its owner dies, (with --durability power) an
 * owner and its follower killed at once, and a node whose disk fails the fsync of its WAL (a
 * library every node preloads, failing only the data directory the trigger file names).
 */

let cluster: TestCluster;
const dir = tempDir();
const trigger = join(dir.path, "failing-disk");

beforeAll(async () => {
  cluster = await TestCluster.start({
    env: failingFsyncEnvironment(dir.path, trigger),
    nodes: 3,
    shards: 4,
    leaseTtl: "3s",
    args: ["--replicas", "2", "--durability", "power"],
    // Each node's peers reach it through a link the test can cut; its clients (the test) reach it directly.
    links: ["n1", "n2", "n3"],
  });
  await cluster.rebalance("n1");
  await fullyReplicated(cluster);
}, 180_000);

afterAll(async () => {
  await cluster?.destroy();
  dir.remove();
});

/** The shard's followers in the map as etcd holds it now. */
async function followersNow(shard: number): Promise<string[]> {
  const client = new Etcd3({ hosts: cluster.etcd.url });
  try {
    const value = await client.get("/apostate/test/map").string();
    if (value === null) throw new Error("etcd has no map");
    const map = JSON.parse(value) as { shards: { shard: number; followers: string[] }[] };
    return map.shards.find((entry) => entry.shard === shard)?.followers ?? [];
  } finally {
    client.close();
  }
}

describe("replicas under faults", () => {
  it("a cut link to a follower: no write is acknowledged while the map still names it, and writes go on once it is dropped", async () => {
    const status = await fullyReplicated(cluster);
    const shard = status.shards.find((entry) => entry.followers.includes("n2") && entry.node !== "n2");
    expect(shard).toBeDefined();
    const { shard: id, node: owner } = shard as { shard: number; node: string };
    const key = idInShard(status, id);
    const link = cluster.node("n2").link;
    link?.cut();
    const cutAt = performance.now();
    // For each acknowledged write, the followers the map named when the answer had arrived: the
    // owner may acknowledge only once n2 is out of the map, as it cannot reach n2.
    const followersAfterAck: string[][] = [];
    const acknowledgedAt: number[] = [];
    const refused: number[] = [];
    let value = 0;
    while (performance.now() - cutAt < 7_000) {
      const status = await putProbe(cluster.node(owner).url, key, { value: (value += 1) });
      if (status < 300) {
        acknowledgedAt.push(performance.now() - cutAt);
        followersAfterAck.push(await followersNow(id));
      } else refused.push(status);
      await sleep(50);
    }
    link?.heal();
    expect(acknowledgedAt.length).toBeGreaterThan(0);
    expect(refused.every((code) => code === 503)).toBe(true);
    // The owner waits for n2 about 2 s before it asks for the drop.
    expect(acknowledgedAt[0]).toBeGreaterThanOrEqual(1_900);
    for (const followers of followersAfterAck) expect(followers).not.toContain("n2");
    await fullyReplicated(cluster);
    await copiesAgree(cluster);
  }, 120_000);

  it("a follower cut off from its peers, its lease held, is dropped, and its shards get followers on the other nodes while it stays cut off", async () => {
    const status = await fullyReplicated(cluster);
    const coordinator = status.coordinator as string;
    // Not the coordinator, whose own calls to itself would cross the cut link.
    const victim = status.shards.flatMap((entry) => entry.followers).find((node) => node !== coordinator) as string;
    expect(victim).toBeDefined();
    const link = cluster.node(victim).link;
    link?.cut();
    try {
      // A write to each of the others' shards, so that their owners find the victim gone and drop
      // it; each shard it followed then goes to the one node that is neither its owner nor the
      // victim, and the seeding that first picks the victim must not hold them up.
      let last: ClusterAnswer | undefined;
      await explained(
        cluster,
        eventually(
          "every shard the victim does not own to have a follower other than the victim",
          async () => {
            last = await cluster.status(coordinator);
            const others = last.shards.filter((entry) => entry.node !== victim);
            await Promise.all(
              others.map((entry) =>
                putProbe(cluster.node(entry.node).url, idInShard(status, entry.shard), {}, 3_000).catch(() => undefined),
              ),
            );
            return others.every((entry) => entry.followers.length === 1 && !entry.followers.includes(victim));
          },
          30_000,
        ),
        () => last,
      );
    } finally {
      link?.heal();
    }
    await fullyReplicated(cluster);
    await copiesAgree(cluster);
  }, 120_000);

  it("with --durability power, an owner and its follower killed together lose no acknowledged write", async () => {
    const status = await fullyReplicated(cluster);
    const pair = status.shards.find((entry) => entry.node !== status.coordinator && entry.followers[0] !== status.coordinator);
    expect(pair).toBeDefined();
    const { node: owner, followers } = pair as { node: string; followers: string[] };
    const follower = followers[0] as string;
    const load = IncrementLoad.start({ urls: () => cluster.urls(), counters: 30, concurrency: 6 });
    await sleep(2_000);
    const acknowledgedBefore = load.acknowledged;
    await Promise.all([cluster.crash(owner), cluster.crash(follower)]);
    await sleep(1_000);
    await Promise.all([cluster.startNode(owner), cluster.startNode(follower)]);
    await sleep(3_000);
    expect(load.acknowledged).toBeGreaterThan(acknowledgedBefore);
    await historyHoldsAndCopiesAgree(cluster, load);
  }, 180_000);

  it("a shard whose follower could not be fenced waits for its dead owner, and fails over when that owner, back, dies again", async () => {
    const status = await fullyReplicated(cluster);
    const coordinator = status.coordinator as string;
    // Not the coordinator's own shard: a new coordinator would start without the first one's memory.
    const entry = status.shards.find((candidate) => candidate.node !== coordinator);
    expect(entry).toBeDefined();
    const { shard, node: owner, followers, epoch } = entry as { shard: number; node: string; followers: string[]; epoch: number };
    const follower = followers[0] as string;
    const shardNow = async () => (await cluster.status(coordinator)).shards.find((candidate) => candidate.shard === shard);
    // The coordinator cannot reach the follower to fence it, so no copy can take over: the shard
    // is given back to its owner at a new epoch and waits for it.
    cluster.node(follower).link?.cut();
    await cluster.crash(owner);
    await explained(
      cluster,
      eventually(
        "the shard to be given back to its dead owner at a new epoch",
        async () => {
          const now = await shardNow();
          return now?.node === owner && now.epoch > epoch;
        },
        30_000,
      ),
    );
    cluster.node(follower).link?.heal();
    await cluster.startNode(owner);
    await fullyReplicated(cluster);
    const key = idInShard(await cluster.status(coordinator), shard);
    const put = (value: number) => putProbe(cluster.node(coordinator).url, key, { value });
    expect(await put(1)).toBe(201);
    // Back and dead again: this time its follower, in sync, takes over.
    await cluster.crash(owner);
    await explained(
      cluster,
      eventually("the shard to fail over", async () => (await shardNow())?.node !== owner, 30_000),
    );
    expect(await put(2)).toBe(200);
    await cluster.startNode(owner);
    await fullyReplicated(cluster);
    await copiesAgree(cluster);
  }, 180_000);

  it("with --durability power, an owner whose WAL fsync fails stops, its shards fail over, and no acknowledged write is lost or doubled", async () => {
    const status = await fullyReplicated(cluster);
    const owner = status.shards.find((entry) => entry.node !== status.coordinator)?.node as string;
    expect(owner).toBeDefined();
    const load = IncrementLoad.start({ urls: () => cluster.urls(), counters: 30, concurrency: 6 });
    await sleep(2_000);
    writeFileSync(trigger, cluster.node(owner).dataDir);
    expect(await cluster.exited(owner)).toBe(1);
    rmSync(trigger);
    expect(cluster.logs()).toMatch(new RegExp(`${owner} .*the fsync of \\S+-wal failed`));
    // Writes go on without it: to its shards once their followers are promoted (its lease is 3 s),
    // to the others' once it is dropped as their follower. The bench and cluster-replicas time
    // the failover; this case checks the history.
    const stoppedAt = load.acknowledged;
    await explained(
      cluster,
      eventually("writes to be acknowledged again", () => load.acknowledged > stoppedAt + 10, 30_000),
    );
    await cluster.startNode(owner);
    await sleep(3_000);
    await historyHoldsAndCopiesAgree(cluster, load);
  }, 180_000);
});
