import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { slotOf } from "../../schema/placement.js";
import { eventually } from "../support/cluster-etcd.js";
import { IncrementLoad } from "../support/increment-load.js";
import { TestCluster } from "../support/test-cluster.js";

/*
 * Outages: etcd away for 20 s stops changes to the topology, never reads or writes; a node that
 * is down makes its own shards answer 503 from the other nodes until it is back, with every
 * acknowledged write.
 */

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 3, shards: 6 });
  await cluster.rebalance("n1");
}, 180_000);

afterAll(() => cluster?.destroy());

/** Increments acknowledged by each node while `during` runs. */
async function acknowledgedDuring(during: () => Promise<void>): Promise<{ load: IncrementLoad; during: number }> {
  const load = IncrementLoad.start({ urls: () => cluster.urls(), counters: 30, concurrency: 6 });
  await sleep(1_000);
  const before = load.acknowledged;
  await during();
  return { load, during: load.acknowledged - before };
}

describe("etcd stopped for 20 s", () => {
  it("keeps every node serving reads and writes, refuses a move meanwhile, and loses nothing", async () => {
    let refusedMove: { status: number; body: { code: string; detail: string } } | undefined;
    const readsDuring: number[] = [];
    const seeded = await fetch(`${cluster.node("n1").url}/v1/entities/account/outage`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ n: 1 }),
    });
    expect(seeded.status).toBe(201);
    const { load, during } = await acknowledgedDuring(async () => {
      await cluster.etcd.stop();
      const stoppedAt = performance.now();
      refusedMove = await cluster.admin("n2", "POST", "/admin/cluster/moves", { shard: 0, to: "n3" });
      while (performance.now() - stoppedAt < 20_000) {
        for (const id of cluster.ids) {
          const read = await fetch(`${cluster.node(id).url}/v1/entities/account/outage`);
          readsDuring.push(read.status);
        }
        await sleep(1_000);
      }
      await cluster.etcd.start();
    });
    expect(during).toBeGreaterThan(100);
    expect(readsDuring.length).toBeGreaterThanOrEqual(30);
    expect(readsDuring.filter((status) => status !== 200)).toEqual([]);
    expect(refusedMove?.status).toBe(503);
    expect(refusedMove?.body.code).toBe("unavailable");
    expect(refusedMove?.body.detail).toMatch(/etcd/);

    // Back with etcd: every node holds a lease again and the topology can change.
    await eventually(
      "every node to be alive again",
      async () => (await cluster.status("n1").catch(() => undefined))?.nodes.every((node) => node.alive) ?? false,
      30_000,
    );
    await sleep(1_000);
    await load.stop();
    await cluster.expectHistoryHolds(load, "n1");
  }, 120_000);
});

describe("a node that is down", () => {
  it("makes its shards answer 503 with Retry-After elsewhere, and serves them again after its restart", async () => {
    const status = await cluster.status("n1");
    const shard = status.shards.find((entry) => entry.node === "n2");
    expect(shard).toBeDefined();
    const { from, to } = shard?.slots ?? { from: 0, to: 0 };
    let id = 0;
    while (!(from <= slotOf("account", `k${id}`) && slotOf("account", `k${id}`) <= to)) id++;
    const path = `/v1/entities/account/k${id}`;
    const write = await fetch(`${cluster.node("n1").url}${path}`, {
      method: "PUT",
      headers: { "content-type": "application/json", "idempotency-key": "before-crash" },
      body: JSON.stringify({ n: 1 }),
    });
    expect(write.status).toBe(201);

    const { load } = await acknowledgedDuring(async () => {
      await cluster.crash("n2");
      const down = await fetch(`${cluster.node("n3").url}${path}`);
      expect(down.status).toBe(503);
      expect(down.headers.get("retry-after")).toBe("1");
      expect(((await down.json()) as { code: string }).code).toBe("unavailable");
      await sleep(2_000);
      await cluster.startNode("n2");
    });
    // n3 sees n2's new lease through its watch a moment after n2 listens.
    let back = await fetch(`${cluster.node("n3").url}${path}`);
    await eventually(
      "n3 to reach the restarted n2",
      async () => {
        back = await fetch(`${cluster.node("n3").url}${path}`);
        return back.status === 200;
      },
      15_000,
    );
    expect(back.status).toBe(200);
    expect(back.headers.get("apostate-served-by")).toBe("n2");
    expect(await back.json()).toMatchObject({ version: 1, data: { n: 1 } });

    await sleep(1_000);
    await load.stop();
    await cluster.expectHistoryHolds(load, "n3");
  }, 120_000);
});
