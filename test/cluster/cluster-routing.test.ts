import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { slotOf } from "../../schema/placement.js";
import { TestCluster } from "../support/test-cluster.js";

/*
 * Three real nodes on a real etcd: the first founds the cluster with all the shards, the others
 * join empty, and any node answers any /v1 request by forwarding it to the owner in one hop.
 */

let cluster: TestCluster;

beforeAll(async () => {
  // Every request logged, so that a test can see which node logged a forwarded one.
  cluster = await TestCluster.start({ nodes: 3, shards: 4, args: ["--log-requests", "all"] });
}, 120_000);

afterAll(() => cluster?.destroy());

interface Topology {
  version: number;
  slots: number;
  shards: { shard: number; slots: { from: number; to: number }; node: string; url: string | null }[];
}

async function topology(via: string): Promise<Topology> {
  const answer = await fetch(`${cluster.node(via).url}/v1/topology`);
  expect(answer.status).toBe(200);
  return (await answer.json()) as Topology;
}

describe("a cluster of three nodes", () => {
  it("gives every shard to the founding node, with its URL, in the map every node serves", async () => {
    const maps = await Promise.all(cluster.ids.map(topology));
    for (const map of maps) expect(map).toEqual(maps[0]);
    const map = maps[0] as Topology;
    expect(map.version).toBeGreaterThan(0);
    expect(map.slots).toBe(4096);
    expect(map.shards.map((shard) => [shard.shard, shard.node, shard.url])).toEqual(
      [0, 1, 2, 3].map((shard) => [shard, "n1", cluster.node("n1").url]),
    );
  });

  it("answers a write sent to a node that owns nothing as the owner answered, naming the owner", async () => {
    const put = await fetch(`${cluster.node("n2").url}/v1/entities/account/alice`, {
      method: "PUT",
      headers: { "content-type": "application/json", "idempotency-key": "open-alice" },
      body: JSON.stringify({ balance: 10 }),
    });
    expect(put.status).toBe(201);
    expect(put.headers.get("apostate-served-by")).toBe("n1");
    expect(Number(put.headers.get("apostate-map-version"))).toBeGreaterThan(0);
    expect(put.headers.get("location")).toBe("/v1/entities/account/alice");
    expect(await put.json()).toMatchObject({ type: "account", id: "alice", version: 1, data: { balance: 10 } });

    // The retry through a third node is replayed by the owner, not applied again.
    const retry = await fetch(`${cluster.node("n3").url}/v1/entities/account/alice`, {
      method: "PUT",
      headers: { "content-type": "application/json", "idempotency-key": "open-alice" },
      body: JSON.stringify({ balance: 10 }),
    });
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");

    const direct = await fetch(`${cluster.node("n1").url}/v1/entities/account/alice`);
    expect(direct.status).toBe(200);
    expect(direct.headers.get("apostate-served-by")).toBeNull();
    expect(((await direct.json()) as { version: number }).version).toBe(1);
  });

  it("names its map version on every /v1 answer: refusals, unknown routes and HEAD too", async () => {
    const { version } = await topology("n2");
    const base = cluster.node("n2").url;
    const answers = await Promise.all([
      fetch(`${base}/v1/entities/account/alice`, { method: "POST" }),
      fetch(`${base}/v1/no-such-route`),
      fetch(`${base}/v1/entities/Bad!/x`),
      fetch(`${base}/v1/entities/account?bogus=1`),
      fetch(`${base}/v1/entities/account/nobody`, { method: "HEAD" }),
    ]);
    expect(answers.map((answer) => answer.status)).toEqual([405, 404, 400, 400, 404]);
    for (const answer of answers) expect(answer.headers.get("apostate-map-version")).toBe(String(version));
  });

  it("passes the owner's problem answers back unchanged", async () => {
    const missing = await fetch(`${cluster.node("n3").url}/v1/entities/account/nobody`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(((await missing.json()) as { code: string }).code).toBe("entity-not-found");
  });

  it("leaves a forwarded request's log line to the owner, under the id the answer names", async () => {
    const logged = (node: string, text: string) => (cluster.node(node).server?.output ?? []).some((line) => line.includes(text));
    const read = await fetch(`${cluster.node("n3").url}/v1/entities/account/traced`);
    expect(read.status).toBe(404);
    expect(read.headers.get("apostate-served-by")).toBe("n1");
    const id = read.headers.get("x-request-id") as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    await expect.poll(() => logged("n1", `"reqId":"${id}"`), { timeout: 10_000 }).toBe(true);
    // A request n3 answers itself, logged after the forwarded one would have been.
    const own = await fetch(`${cluster.node("n3").url}/v1/entities/Bad-Type/x`);
    expect(own.status).toBe(400);
    await expect.poll(() => logged("n3", `"reqId":"${own.headers.get("x-request-id")}"`), { timeout: 10_000 }).toBe(true);
    expect(logged("n3", '"path":"/v1/entities/account/traced"')).toBe(false);
  });

  it("refuses a bad key on the node that got it, without forwarding", async () => {
    const bad = await fetch(`${cluster.node("n2").url}/v1/entities/Bad-Type/x`);
    expect(bad.status).toBe(400);
    expect(bad.headers.get("apostate-served-by")).toBeNull();
    expect(((await bad.json()) as { code: string }).code).toBe("invalid-key");
  });

  it("locates a key through a node that does not own it, as its owner sees it", async () => {
    const located = await fetch(`${cluster.node("n3").url}/admin/locate/account/alice`);
    expect(located.status).toBe(200);
    expect(located.headers.get("apostate-served-by")).toBe("n1");
    const slot = slotOf("account", "alice");
    const shard = (await topology("n3")).shards.find((entry) => entry.slots.from <= slot && slot <= entry.slots.to);
    expect(await located.json()).toEqual({ type: "account", id: "alice", slot, shard: shard?.shard, exists: true });

    const absent = await cluster.admin<{ exists: boolean }>("n2", "GET", "/admin/locate/account/nobody");
    expect(absent).toMatchObject({ status: 200, body: { exists: false } });
  });

  it("moves a shard to another node, after which that node serves its keys itself", async () => {
    const shard = (await topology("n1")).shards.find((entry) => {
      const slot = slotOf("account", "alice");
      return entry.slots.from <= slot && slot <= entry.slots.to;
    })?.shard as number;
    const started = await cluster.admin<{ id: string; state: string }>("n3", "POST", "/admin/cluster/moves", { shard, to: "n2" });
    expect(started.status).toBe(202);
    expect(started.body.state).toBe("copying");
    await cluster.waitForMove("n3", started.body.id, "done");

    const map = await topology("n3");
    expect(map.shards.find((entry) => entry.shard === shard)?.node).toBe("n2");
    const read = await fetch(`${cluster.node("n2").url}/v1/entities/account/alice`);
    expect(read.status).toBe(200);
    expect(read.headers.get("apostate-served-by")).toBeNull();
    expect(await read.json()).toMatchObject({ version: 1, data: { balance: 10 } });

    // The idempotency record moved with the entity: the old retry is still a replay.
    const retry = await fetch(`${cluster.node("n1").url}/v1/entities/account/alice`, {
      method: "PUT",
      headers: { "content-type": "application/json", "idempotency-key": "open-alice" },
      body: JSON.stringify({ balance: 10 }),
    });
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.headers.get("apostate-served-by")).toBe("n2");
  }, 90_000);

  it("lists a type across every node, merged by id, with cursors any node continues", async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `u${String(i).padStart(2, "0")}`);
    for (const id of ids) {
      const put = await fetch(`${cluster.node("n1").url}/v1/entities/user/${id}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id }),
      });
      expect(put.status).toBeLessThan(300);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let page = 0;
    do {
      const via = cluster.ids[page % 3] as string;
      const url = `${cluster.node(via).url}/v1/entities/user?limit=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const answer = await fetch(url);
      expect(answer.status).toBe(200);
      const body = (await answer.json()) as { items: { id: string }[]; nextCursor: string | null };
      seen.push(...body.items.map((item) => item.id));
      cursor = body.nextCursor;
      page++;
    } while (cursor !== null);
    expect(seen).toEqual(ids);
  });

  it("rebalances until every node owns a fair share", async () => {
    const answer = await cluster.admin<{ moves: { id: string }[] }>("n1", "POST", "/admin/cluster/rebalance");
    expect(answer.status).toBe(202);
    for (const move of answer.body.moves) await cluster.waitForMove("n1", move.id, "done");
    const status = await cluster.status("n2");
    const counts = status.nodes.map((node) => node.shards.length).sort();
    expect(counts).toEqual([1, 1, 2]);
  }, 120_000);

  it("splits a shard in two on its node, keeping every entity readable", async () => {
    const before = await cluster.status("n1");
    const target = before.shards.find((shard) => shard.slots.to > shard.slots.from) as (typeof before.shards)[number];
    const started = await cluster.admin<{ id: string; newShard: number }>("n1", "POST", "/admin/cluster/splits", {
      shard: target.shard,
    });
    expect(started.status).toBe(202);
    await cluster.waitForMove("n1", started.body.id, "done");
    const after = await cluster.status("n3");
    expect(after.shards).toHaveLength(before.shards.length + 1);
    const halves = after.shards.filter((shard) => shard.shard === target.shard || shard.shard === started.body.newShard);
    expect(halves.map((shard) => shard.node)).toEqual([target.node, target.node]);
    expect(Math.min(...halves.map((s) => s.slots.from))).toBe(target.slots.from);
    expect(Math.max(...halves.map((s) => s.slots.to))).toBe(target.slots.to);

    const listed = await fetch(`${cluster.node("n2").url}/v1/entities/user?limit=100`);
    expect(((await listed.json()) as { items: unknown[] }).items).toHaveLength(30);
  }, 90_000);

  it("refuses a move to a node that is not alive, and one of an unknown shard", async () => {
    const dead = await cluster.admin<{ code: string }>("n1", "POST", "/admin/cluster/moves", { shard: 0, to: "n9" });
    expect(dead.status).toBe(400);
    expect(dead.body.code).toBe("invalid-body");
    const unknown = await cluster.admin<{ code: string }>("n1", "POST", "/admin/cluster/moves", { shard: 99, to: "n2" });
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe("shard-not-found");
  });
});
