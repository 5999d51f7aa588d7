import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../client/index.js";
import { slotOf } from "../../schema/placement.js";
import { TestCluster } from "../support/test-cluster.js";

/*
 * The typed client against three real nodes: it learns the map from any node, sends each
 * request straight to its key's owner (no answer is forwarded once the map is loaded), and
 * follows a move without an error reaching the caller.
 */

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 3, shards: 6 });
  await cluster.rebalance("n1");
}, 180_000);

afterAll(() => cluster?.destroy());

/** A fetch that notes, for each answer, the node it was sent to and whether another node served it. */
function recordingFetch() {
  const seen: { origin: string; servedBy: string | null; status: number }[] = [];
  const fetcher = async (request: Request) => {
    const answer = await fetch(request);
    seen.push({ origin: new URL(request.url).origin, servedBy: answer.headers.get("apostate-served-by"), status: answer.status });
    return answer;
  };
  return { seen, fetcher };
}

describe("the typed client on a cluster", () => {
  it("sends each request straight to its key's owner: no answer after the map load is forwarded", async () => {
    const { seen, fetcher } = recordingFetch();
    const db = createClient({ baseUrl: cluster.node("n3").url, fetch: fetcher });
    const ids = Array.from({ length: 40 }, (_, i) => `direct-${i}`);
    for (const id of ids) await db.put("account", id, { id });
    for (const id of ids) expect((await db.get("account", id)).data).toEqual({ id });

    const entityRequests = seen.filter((_, index) => index > 0);
    expect(entityRequests).toHaveLength(80);
    expect(entityRequests.filter((answer) => answer.servedBy !== null)).toEqual([]);
    const origins = new Set(entityRequests.map((answer) => answer.origin));
    expect(origins.size).toBe(3);
    expect(db.topology()?.version).toBeGreaterThan(0);
  });

  it("follows a move: calls during and after it succeed, and later ones go to the new owner", async () => {
    const { seen, fetcher } = recordingFetch();
    const db = createClient({ baseUrl: cluster.node("n1").url, fetch: fetcher, retry: { maxAttempts: 20, deadlineMs: 30_000 } });
    await db.put("account", "mover", { n: 0 });
    const slot = slotOf("account", "mover");
    const held = db.topology()?.shards.find((entry) => entry.slots.from <= slot && slot <= entry.slots.to);
    expect(seen.at(-1)?.origin).toBe(held?.url);
    const shard = held?.shard as number;
    const target = cluster.ids.find((id) => id !== held?.node) as string;

    const writes: Promise<unknown>[] = [];
    const move = await cluster.admin<{ id: string }>("n1", "POST", "/admin/cluster/moves", { shard, to: target });
    expect(move.status).toBe(202);
    let done = false;
    const finished = cluster.waitForMove("n1", move.body.id, "done").then(() => (done = true));
    for (let n = 1; !done || n <= 5; n++) {
      writes.push(db.ops("account", "mover", { do: [{ op: "inc", path: "/n", value: 1 }] }));
      await Promise.all(writes.splice(0));
      if (n > 500) break;
    }
    await finished;
    const after = await db.get("account", "mover");
    expect(after.data.n).toBe(after.version - 1);

    // Once the client has seen the new map, nothing more is forwarded.
    seen.length = 0;
    for (let i = 0; i < 10; i++) await db.get("account", "mover");
    expect(seen.filter((answer) => answer.servedBy !== null).length).toBeLessThanOrEqual(1);
    expect(seen.at(-1)?.servedBy).toBeNull();
  }, 90_000);
});
