import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { slotOf } from "../../schema/placement.js";
import { eventually } from "../support/cluster-etcd.js";
import { IncrementLoad } from "../support/increment-load.js";
import { TestCluster, type ClusterAnswer } from "../support/test-cluster.js";

/*
 * Replicas and failover, proven by histories: keyed increments through random nodes while an
 * owner is killed or paused, or a follower is killed; every acknowledged increment must be there
 * exactly once, and every copy of every shard must hold the same rows.
 */

const LEASE_TTL_S = 3;
let cluster: TestCluster;

interface Digest {
  sequence: number;
  entities: number;
  rows: number;
  checksum: string;
}

/** Some node that is running, to ask about the cluster. */
function anyLive(): string {
  const id = cluster.ids.find((node) => cluster.node(node).server);
  if (!id) throw new Error("no node is running");
  return id;
}

/** Waits until every shard has a live owner and `replicas - 1` live followers. */
async function fullyReplicated(): Promise<ClusterAnswer> {
  let status: ClusterAnswer | undefined;
  await eventually(
    "every shard to have a live owner and a live follower",
    async () => {
      status = await cluster.status(anyLive()).catch(() => undefined);
      if (!status) return false;
      const alive = new Set(status.nodes.filter((node) => node.alive).map((node) => node.node));
      return status.shards.every(
        (shard) => alive.has(shard.node) && shard.followers.filter((node) => alive.has(node)).length === 1,
      );
    },
    60_000,
  );
  return status as ClusterAnswer;
}

/** Every copy's digest of every shard; equal once the followers hold what their owners hold. */
async function copiesAgree(): Promise<void> {
  let last = "";
  await eventually(
    "every follower to hold its owner's rows",
    async () => {
      const status = await cluster.status(anyLive());
      const mismatched: string[] = [];
      for (const shard of status.shards) {
        const digests = await Promise.all(
          [shard.node, ...shard.followers].map(async (node) => {
            const { status: code, body } = await cluster.admin<Digest>(
              node,
              "GET",
              `/admin/cluster/shards/${shard.shard}/digest`,
            );
            return code === 200 ? `${body.rows}/${body.entities}/${body.checksum}` : `answered ${code}`;
          }),
        );
        if (new Set(digests).size !== 1) mismatched.push(`shard ${shard.shard}: ${digests.join(" | ")}`);
      }
      last = mismatched.join("; ");
      return mismatched.length === 0;
    },
    30_000,
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}: ${last}`);
  });
}

/** An id of type `probe` whose slot lies in a shard `node` owns. */
function probeOwnedBy(status: ClusterAnswer, node: string): string {
  const ranges = status.shards.filter((shard) => shard.node === node).map((shard) => shard.slots);
  for (let i = 0; ; i++) {
    const slot = slotOf("probe", `p${i}`);
    if (ranges.some((range) => range.from <= slot && slot <= range.to)) return `p${i}`;
  }
}

/** How long until a write of `id` succeeds through any running node, in ms. */
async function msUntilWritable(id: string, since: number): Promise<number> {
  for (;;) {
    const urls = cluster.urls();
    const url = urls[Math.floor(Math.random() * urls.length)];
    const answer = await fetch(`${url}/v1/entities/probe/${id}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ at: Date.now() }),
      signal: AbortSignal.timeout(2_000),
    }).catch(() => undefined);
    if (answer && answer.status < 300) return performance.now() - since;
    if (performance.now() - since > 60_000) throw new Error(`probe/${id} is still not writable after 60 s`);
    await sleep(100);
  }
}

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 3, shards: 4, leaseTtl: `${LEASE_TTL_S}s`, args: ["--replicas", "2"] });
  await cluster.rebalance("n1");
  await fullyReplicated();
}, 180_000);

afterAll(() => cluster?.destroy());

describe("--replicas 2", () => {
  it("gives every shard a follower on another node that holds the same rows as its owner", async () => {
    const status = await fullyReplicated();
    for (const shard of status.shards) {
      expect(shard.followers).toHaveLength(1);
      expect(shard.followers).not.toContain(shard.node);
    }
    for (let i = 0; i < 60; i++) {
      const answer = await fetch(`${cluster.node(cluster.ids[i % 3] as string).url}/v1/entities/item/i${i}`, {
        method: "PUT",
        headers: { "content-type": "application/json", "idempotency-key": `item-${i}` },
        body: JSON.stringify({ i }),
      });
      expect(answer.status).toBe(201);
    }
    await copiesAgree();
  }, 60_000);

  it("kill -9 of an owner: its shards are written again within the lease TTL + 5 s, nothing acknowledged is lost or doubled, and it comes back as a follower", async () => {
    const before = await fullyReplicated();
    const victim = before.nodes.find((node) => node.node !== before.coordinator && node.shards.length > 0)?.node as string;
    const probe = probeOwnedBy(before, victim);
    const load = IncrementLoad.start({ urls: () => cluster.urls(), counters: 30, concurrency: 6 });
    await sleep(2_000);
    const acknowledgedBefore = load.acknowledged;
    await cluster.crash(victim);
    const crashedAt = performance.now();
    const outage = await msUntilWritable(probe, crashedAt);
    expect(outage).toBeLessThanOrEqual((LEASE_TTL_S + 5) * 1_000);
    await sleep(2_000);
    const history = await load.stop();
    expect(load.acknowledged).toBeGreaterThan(acknowledgedBefore);
    const verdict = await load.verify(cluster.node(anyLive()).url);
    expect(verdict.problems).toEqual([]);
    expect(verdict).toMatchObject({ lost: 0, doubled: 0 });
    expect(history.length).toBeGreaterThan(50);

    const after = await cluster.status(anyLive());
    expect(after.shards.some((shard) => shard.node === victim)).toBe(false);
    await cluster.startNode(victim);
    await fullyReplicated();
    await copiesAgree();
  }, 180_000);

  it("SIGSTOP of an owner for 3 × the lease TTL, then SIGCONT: nothing it acknowledges is lost, nothing doubled", async () => {
    const before = await fullyReplicated();
    const victim = before.nodes.find((node) => node.node !== before.coordinator && node.shards.length > 0)?.node as string;
    const load = IncrementLoad.start({ urls: () => cluster.urls(), counters: 30, concurrency: 6 });
    await sleep(2_000);
    cluster.pause(victim);
    await sleep(3 * LEASE_TTL_S * 1_000);
    cluster.resume(victim);
    await sleep(3_000);
    await load.stop();
    const verdict = await load.verify(cluster.node(anyLive()).url);
    expect(verdict.problems).toEqual([]);
    expect(verdict).toMatchObject({ lost: 0, doubled: 0 });
    await fullyReplicated();
    await copiesAgree();
  }, 180_000);

  it("kill -9 of a follower: writes go on once it is dropped, and it rejoins and catches up", async () => {
    const before = await fullyReplicated();
    const victim = before.shards.flatMap((shard) => shard.followers).find((node) => node !== before.coordinator) as string;
    const load = IncrementLoad.start({ urls: () => cluster.urls(), counters: 30, concurrency: 6 });
    await sleep(2_000);
    await cluster.crash(victim);
    await sleep(6_000);
    const acknowledgedWithoutIt = load.acknowledged;
    await sleep(3_000);
    expect(load.acknowledged).toBeGreaterThan(acknowledgedWithoutIt);
    await cluster.startNode(victim);
    await sleep(2_000);
    await load.stop();
    const verdict = await load.verify(cluster.node(anyLive()).url);
    expect(verdict.problems).toEqual([]);
    expect(verdict).toMatchObject({ lost: 0, doubled: 0 });
    await fullyReplicated();
    await copiesAgree();
  }, 180_000);
});
