import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { slotOf } from "../../schema/placement.js";
import { eventually } from "../support/cluster-etcd.js";
import { TestCluster } from "../support/test-cluster.js";

/*
 * Fencing: a node whose map is stale (held back by a test hook, as a late etcd watch would be)
 * must not write to a shard that has moved away from it. The move froze the shard in the old
 * owner's file before the map switched, and every write checks that file under SQLite's write
 * lock, so the stale node refuses instead of acknowledging a write the new owner never sees.
 */

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 2, shards: 4, testHooks: true });
}, 120_000);

afterAll(() => cluster?.destroy());

interface Topology {
  shards: { shard: number; slots: { from: number; to: number }; node: string }[];
}

async function put(via: string, id: string, body: object, key: string): Promise<Response> {
  return fetch(`${cluster.node(via).url}/v1/entities/account/${id}`, {
    method: "PUT",
    headers: { "content-type": "application/json", "idempotency-key": key },
    body: JSON.stringify(body),
  });
}

describe("a node with a stale map", () => {
  it("cannot write to a shard that moved away from it, and forwards once its map catches up", async () => {
    expect((await put("n1", "fenced", { n: 1 }, "first")).status).toBe(201);
    const before = (await (await fetch(`${cluster.node("n1").url}/v1/topology`)).json()) as Topology;
    const slot = slotOf("account", "fenced");
    const shard = before.shards.find((entry) => entry.slots.from <= slot && slot <= entry.slots.to)?.shard as number;

    await cluster.holdMap("n1", true);
    const move = await cluster.admin<{ id: string }>("n2", "POST", "/admin/cluster/moves", { shard, to: "n2" });
    expect(move.status).toBe(202);
    await cluster.waitForMove("n2", move.body.id, "done");

    // n1 still routes by the old map: it believes it owns the shard, and serves the write itself.
    const stale = (await (await fetch(`${cluster.node("n1").url}/v1/topology`)).json()) as Topology;
    expect(stale.shards.find((entry) => entry.shard === shard)?.node).toBe("n1");
    const refused = await put("n1", "fenced", { n: 2 }, "while-stale");
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(refused.headers.get("apostate-served-by")).toBeNull();
    expect(((await refused.json()) as { code: string }).code).toBe("unavailable");

    // The new owner holds the entity as it was: the refused write is nowhere.
    const owned = await fetch(`${cluster.node("n2").url}/v1/entities/account/fenced`);
    expect(await owned.json()).toMatchObject({ version: 1, data: { n: 1 } });

    await cluster.holdMap("n1", false);
    await eventually(
      "n1 to forward to the new owner",
      async () => {
        const answer = await put("n1", "fenced", { n: 2 }, "after-catch-up");
        return answer.status === 200 && answer.headers.get("apostate-served-by") === "n2";
      },
      20_000,
    );
    const after = await fetch(`${cluster.node("n2").url}/v1/entities/account/fenced`);
    expect(await after.json()).toMatchObject({ version: 2, data: { n: 2 } });
  }, 120_000);
});
