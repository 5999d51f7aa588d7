import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createClient, WORKFLOW_TYPE, type ApostateClient, type ClientOptions, type Topology } from "../../client/index.js";
import { SLOT_COUNT, slotOf, slotRanges } from "../../schema/placement.js";
import { applyOps } from "../../server/documents/ops.js";
import type { JsonObject } from "../../server/documents/json-value.js";
import { rejectionOf, transferSteps } from "../support/client-helpers.js";

/*
 * Four in-test node:http servers stand in for a cluster: `entry` is the client's baseUrl and
 * owns nothing (a node that just joined), n1–n3 own a third of the slots each. Every node
 * answers `GET /v1/topology` with the cluster's `topology`, keeps its own entities in memory,
 * and records every request it gets.
 */

interface Seen {
  method: string;
  path: string;
  key: string | null;
}

interface StoredEntity {
  type: string;
  id: string;
  version: number;
  data: JsonObject;
  createdAt: string;
  updatedAt: string;
}

interface FakeNode {
  name: string;
  url: string;
  seen: Seen[];
  /** Sent with every `/v1` answer, as a cluster node sends `Apostate-Map-Version` and `Apostate-Served-By`. */
  headers: Record<string, string>;
  /** Answers an entity request in place of the store: a problem status, or "drop" to read it and close the socket. */
  fault?: number | "drop";
  close(): Promise<void>;
}

interface FakeCluster {
  entry: FakeNode;
  owners: FakeNode[];
  /** What `GET /v1/topology` answers: a body, a problem status, or "hang" (released by `release()`). */
  topology: unknown;
  release(): void;
}

const RETRY = { baseDelayMs: 1, maxDelayMs: 5 };
const clusters: FakeCluster[] = [];

afterEach(async () => {
  for (const cluster of clusters.splice(0)) {
    cluster.release();
    await Promise.all([cluster.entry, ...cluster.owners].map((node) => node.close()));
  }
});

async function startCluster(): Promise<FakeCluster> {
  let waiting: (() => void)[] = [];
  const hang = () => new Promise<void>((resolve) => waiting.push(resolve));
  // The nodes look the cluster up per request, so a test can change its map at any time.
  const nodes = await Promise.all(["entry", "n1", "n2", "n3"].map((name) => startNode(name, () => cluster, hang)));
  const [entry, ...owners] = nodes as [FakeNode, ...FakeNode[]];
  const cluster: FakeCluster = {
    entry,
    owners,
    topology: mapOf(5, owners),
    release: () => {
      for (const release of waiting) release();
      waiting = [];
    },
  };
  clusters.push(cluster);
  return cluster;
}

/** A map of even shards, shard i owned by `owners[i]` (`null`: an owner without a lease). */
function mapOf(version: number, owners: (FakeNode | null)[]): Topology {
  return {
    version,
    slots: SLOT_COUNT,
    shards: slotRanges(owners.length).map((slots, shard) => ({
      shard,
      slots,
      node: owners[shard]?.name ?? `gone-${shard}`,
      url: owners[shard]?.url ?? null,
    })),
  };
}

/** An id of `type` whose slot falls in shard `shard` of `shardCount` even shards. */
function idInShard(type: string, shard: number, shardCount = 3, tag = "k"): string {
  const { from, to } = slotRanges(shardCount)[shard]!;
  for (let i = 0; ; i += 1) {
    const slot = slotOf(type, `${tag}-${i}`);
    if (slot >= from && slot <= to) return `${tag}-${i}`;
  }
}

async function startNode(name: string, clusterOf: () => FakeCluster, hang: () => Promise<void>): Promise<FakeNode> {
  const entities = new Map<string, StoredEntity>();
  const node: FakeNode = { name, url: "", seen: [], headers: {}, close: async () => {} };
  const server = createServer((request, response) => {
    void answer(request, response).catch((error: unknown) => {
      response.writeHead(500, { "Content-Type": "text/plain" }).end(String(error));
    });
  });

  async function answer(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://fake");
    const key = request.headers["idempotency-key"];
    node.seen.push({ method: request.method ?? "", path: url.pathname, key: typeof key === "string" ? key : null });
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body: unknown = chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : undefined;
    const reply = (status: number, value?: unknown, contentType = "application/json") => {
      response.writeHead(status, { ...node.headers, ...(value === undefined ? {} : { "Content-Type": contentType }) });
      response.end(value === undefined ? undefined : JSON.stringify(value));
    };
    const problem = (status: number, code: string) =>
      reply(status, { type: `urn:apostate:problem:${code}`, title: code, status, code }, "application/problem+json");

    if (url.pathname === "/v1/topology") {
      const cluster = clusterOf();
      if (cluster.topology === "hang") await hang();
      if (typeof cluster.topology === "number") return problem(cluster.topology, "unavailable");
      return reply(200, cluster.topology);
    }
    const match = /^\/v1\/entities\/([^/]+)(?:\/([^/]+))?(\/ops)?$/.exec(url.pathname);
    if (!match) return problem(404, "route-not-found");
    const [, type = "", rawId, ops] = match;
    if (rawId === undefined) return reply(200, { items: [], nextCursor: null });
    if (node.fault === "drop") return void response.socket?.destroy();
    if (node.fault !== undefined) return problem(node.fault, "unavailable");

    const id = decodeURIComponent(rawId);
    const current = entities.get(`${type}/${id}`);
    const write = (data: JsonObject) => {
      const now = new Date().toISOString();
      const next = { type, id, version: (current?.version ?? 0) + 1, data, createdAt: current?.createdAt ?? now, updatedAt: now };
      entities.set(`${type}/${id}`, next);
      reply(current ? 200 : 201, next);
    };
    switch (ops ? "OPS" : request.method) {
      case "GET":
        return current ? reply(200, current) : problem(404, "entity-not-found");
      case "PUT":
        return write(body as JsonObject);
      case "PATCH":
        // Routing is under test, not patching: the entity changes version, not data.
        return current ? write(current.data) : problem(404, "entity-not-found");
      case "OPS": {
        const request = body as Parameters<typeof applyOps>[1] & { upsert?: boolean };
        if (!current && !request.upsert) return problem(404, "entity-not-found");
        return write(applyOps(structuredClone(current?.data ?? {}), request));
      }
      case "DELETE":
        entities.delete(`${type}/${id}`);
        return reply(204);
      default:
        return problem(405, "method-not-allowed");
    }
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  node.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  node.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return node;
}

function clientOf(cluster: FakeCluster, options: Partial<ClientOptions> = {}): ApostateClient {
  return createClient({ baseUrl: cluster.entry.url, retry: RETRY, ...options });
}

function topologyLoads(node: FakeNode): number {
  return node.seen.filter((seen) => seen.path === "/v1/topology").length;
}

function entityRequests(node: FakeNode): string[] {
  return node.seen.filter((seen) => seen.path !== "/v1/topology").map((seen) => `${seen.method} ${seen.path}`);
}

/** Every attempt the client made, failed ones included, as `<node url> <method> <path>` and its key. */
function recordingFetch(): { fetch: (request: Request) => Promise<Response>; attempts: { to: string; key: string | null }[] } {
  const attempts: { to: string; key: string | null }[] = [];
  return {
    attempts,
    fetch: (request) => {
      const url = new URL(request.url);
      attempts.push({ to: `${url.origin} ${request.method} ${url.pathname}`, key: request.headers.get("Idempotency-Key") });
      return fetch(request);
    },
  };
}

/** Lets a background map load that a call set off arrive (or, in the negative tests, not). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

describe("a client routing by the cluster's map", () => {
  it("sends every single-entity request to the owner of its key's slot, and only the map load to baseUrl", async () => {
    const cluster = await startCluster();
    const db = clientOf(cluster);
    const ids = [0, 1, 2].map((shard) => idInShard("account", shard));
    for (const id of ids) {
      await db.put("account", id, { balance: 1 });
      await db.get("account", id);
      await db.patch("account", id, { note: "x" });
      await db.jsonPatch("account", id, [{ op: "add", path: "/note", value: "y" }]);
      await db.ops("account", id, { do: [{ op: "inc", path: "/balance", value: 1 }] });
      await db.modify("account", id, (data) => ({ ...data, modified: true }));
      await db.collection<{ balance: number }>("account").get(id);
      await db.delete("account", id);
    }
    cluster.owners.forEach((owner, shard) => {
      const path = `/v1/entities/account/${ids[shard]}`;
      expect(entityRequests(owner), owner.name).toEqual([
        `PUT ${path}`,
        `GET ${path}`,
        `PATCH ${path}`,
        `PATCH ${path}`,
        `POST ${path}/ops`,
        `GET ${path}`,
        `PUT ${path}`,
        `GET ${path}`,
        `DELETE ${path}`,
      ]);
      const mutations = owner.seen.filter((seen) => seen.method !== "GET");
      expect(mutations.every((seen) => seen.key !== null)).toBe(true);
    });
    expect(cluster.entry.seen).toEqual([{ method: "GET", path: "/v1/topology", key: null }]);
    expect(db.topology()).toEqual(cluster.topology);
  });

  it("loads the map once for the calls that need it at the same time", async () => {
    const cluster = await startCluster();
    const db = clientOf(cluster);
    const ids = Array.from({ length: 12 }, (_, i) => idInShard("doc", i % 3, 3, `c${i}`));
    await Promise.all(ids.map((id) => db.put("doc", id, {})));
    expect(topologyLoads(cluster.entry)).toBe(1);
    expect(entityRequests(cluster.entry)).toEqual([]);
    expect(cluster.owners.map((owner) => entityRequests(owner).length)).toEqual([4, 4, 4]);
  });

  it("runs each workflow step, and each progress write, at the owner of its entity", async () => {
    const cluster = await startCluster();
    const db = clientOf(cluster);
    const [from, to] = [idInShard("account", 0), idInShard("account", 1)];
    await db.put("account", from!, { balance: 100 });
    await db.put("account", to!, { balance: 0 });
    const result = await db.workflow("wf-routed", transferSteps("wf-routed", from!, to!, 30));
    expect(result.status).toBe("completed");

    const progressOwner = cluster.owners[Math.floor((slotOf(WORKFLOW_TYPE, "wf-routed") * 3) / SLOT_COUNT)]!;
    const progressWrites = progressOwner.seen.filter((seen) => seen.path === `/v1/entities/${WORKFLOW_TYPE}/wf-routed/ops`);
    expect(progressWrites.length).toBeGreaterThanOrEqual(3);
    expect(cluster.owners[0]!.seen.find((seen) => seen.key === "wf/wf-routed/debit")?.path).toBe(
      `/v1/entities/account/${from}/ops`,
    );
    expect(cluster.owners[1]!.seen.find((seen) => seen.key === "wf/wf-routed/credit")?.path).toBe(
      `/v1/entities/account/${to}/ops`,
    );
    expect(entityRequests(cluster.entry)).toEqual([]);
  });

  it("sends lists to baseUrl, which asks every node", async () => {
    const cluster = await startCluster();
    const db = clientOf(cluster);
    await db.get("doc", idInShard("doc", 1)).catch(() => undefined);
    expect(await db.listPage("doc")).toEqual({ items: [], nextCursor: null });
    for await (const entity of db.list("doc")) expect.unreachable(`listed ${entity.id}`);
    expect(entityRequests(cluster.entry)).toEqual(["GET /v1/entities/doc", "GET /v1/entities/doc"]);
  });

  it("sends the keys of an owner without a lease (url null) to baseUrl, and its forwarding reloads nothing", async () => {
    const cluster = await startCluster();
    cluster.topology = mapOf(5, [null, cluster.owners[1]!, cluster.owners[2]!]);
    cluster.entry.headers = { "Apostate-Map-Version": "5", "Apostate-Served-By": "gone-0" };
    const db = clientOf(cluster);
    const id = idInShard("doc", 0);
    await db.put("doc", id, {});
    await db.get("doc", id);
    await settle();
    expect(entityRequests(cluster.entry)).toEqual([`PUT /v1/entities/doc/${id}`, `GET /v1/entities/doc/${id}`]);
    expect(topologyLoads(cluster.entry)).toBe(1);
  });
});

describe("reloading the map", () => {
  it("reloads when an answer names a newer map version, and later requests follow the new map", async () => {
    const cluster = await startCluster();
    const [n1, n2] = cluster.owners as [FakeNode, FakeNode];
    const db = clientOf(cluster);
    const id = idInShard("doc", 0);
    await db.put("doc", id, { at: "n1" });

    cluster.topology = mapOf(6, [n2, n2, cluster.owners[2]!]);
    n1.headers = { "Apostate-Map-Version": "6" };
    await db.get("doc", id);
    await vi.waitFor(() => expect(db.topology()?.version).toBe(6));
    await db.put("doc", id, { at: "n2" });

    expect(entityRequests(n1)).toEqual([`PUT /v1/entities/doc/${id}`, `GET /v1/entities/doc/${id}`]);
    expect(entityRequests(n2)).toEqual([`PUT /v1/entities/doc/${id}`]);
    expect(topologyLoads(cluster.entry)).toBe(2);
  });

  it.each([
    ["the same version", "5"],
    ["an older version", "4"],
    ["a negative number", "-1"],
    ["an exponent", "6e0"],
    ["a fraction", "6.5"],
    ["text", "six"],
    ["nothing", ""],
  ])("does not reload for an Apostate-Map-Version of %s", async (_name, header) => {
    const cluster = await startCluster();
    cluster.owners.forEach((owner) => (owner.headers = { "Apostate-Map-Version": header }));
    const db = clientOf(cluster);
    for (const shard of [0, 1, 2]) await db.get("doc", idInShard("doc", shard)).catch(() => undefined);
    await settle();
    expect(topologyLoads(cluster.entry)).toBe(1);
  });

  it("reloads when the owner it sent a request to forwarded it (Apostate-Served-By)", async () => {
    const cluster = await startCluster();
    const [n1, n2] = cluster.owners as [FakeNode, FakeNode];
    const db = clientOf(cluster);
    const id = idInShard("doc", 0);
    await db.put("doc", id, {});

    // The node's map is as old as the client's: only the forwarding tells.
    cluster.topology = mapOf(6, [n2, n2, cluster.owners[2]!]);
    n1.headers = { "Apostate-Map-Version": "5", "Apostate-Served-By": "n2" };
    await db.put("doc", id, {});
    await vi.waitFor(() => expect(db.topology()?.version).toBe(6));
    await db.put("doc", id, {});
    expect(entityRequests(n1)).toHaveLength(2);
    expect(entityRequests(n2)).toEqual([`PUT /v1/entities/doc/${id}`]);
  });

  it("never goes back to an older map than the one it has", async () => {
    const cluster = await startCluster();
    const db = clientOf(cluster);
    await db.get("doc", idInShard("doc", 0)).catch(() => undefined);
    cluster.owners[0]!.headers = { "Apostate-Map-Version": "9" };
    cluster.topology = mapOf(4, [cluster.owners[1]!, cluster.owners[1]!, cluster.owners[1]!]);
    await db.get("doc", idInShard("doc", 0)).catch(() => undefined);
    await vi.waitFor(() => expect(topologyLoads(cluster.entry)).toBe(2));
    await settle();
    expect(db.topology()?.version).toBe(5);
    await db.get("doc", idInShard("doc", 2)).catch(() => undefined);
    expect(entityRequests(cluster.owners[2]!)).toHaveLength(1);
  });

  it("retries a request at the new owner when the old one refuses it during a move", async () => {
    const cluster = await startCluster();
    const [n1, n2] = cluster.owners as [FakeNode, FakeNode];
    const db = clientOf(cluster);
    const id = idInShard("doc", 0);
    await db.put("doc", id, { v: 1 });

    cluster.topology = mapOf(6, [n2, n2, cluster.owners[2]!]);
    n1.fault = 503;
    n1.headers = { "Apostate-Map-Version": "6" };
    const written = await db.put("doc", id, { v: 2 }, { idempotencyKey: "moved-write", retry: { maxAttempts: 20 } });
    expect(written).toMatchObject({ id, data: { v: 2 } });
    expect(n2.seen.filter((seen) => seen.method === "PUT").map((seen) => seen.key)).toEqual(["moved-write"]);
    const refused = n1.seen.filter((seen) => seen.key === "moved-write");
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(entityRequests(cluster.entry)).toEqual([]);
  });
});

describe("an owner that does not answer", () => {
  it("is retried through baseUrl with the same idempotency key, passed over afterwards, and the map reloaded", async () => {
    const cluster = await startCluster();
    const [n1] = cluster.owners as [FakeNode];
    const { fetch, attempts } = recordingFetch();
    const db = clientOf(cluster, { fetch });
    const id = idInShard("doc", 0);
    await db.get("doc", idInShard("doc", 2)).catch(() => undefined);
    await n1.close();

    const written = await db.put("doc", id, { ok: true });
    expect(written).toMatchObject({ id, version: 1 });
    const path = `/v1/entities/doc/${id}`;
    const puts = attempts.filter((attempt) => attempt.to.endsWith(`PUT ${path}`));
    expect(puts.map((attempt) => attempt.to)).toEqual([`${n1.url} PUT ${path}`, `${cluster.entry.url} PUT ${path}`]);
    expect(puts[0]?.key).toMatch(/^[0-9a-f-]{36}$/);
    expect(puts[1]?.key).toBe(puts[0]?.key);
    await vi.waitFor(() => expect(topologyLoads(cluster.entry)).toBe(2));

    await db.get("doc", id);
    expect(attempts.at(-1)?.to).toBe(`${cluster.entry.url} GET ${path}`);
  });

  it("when the answer is lost after the owner read the request, the retry carries the key the owner saw", async () => {
    const cluster = await startCluster();
    const [, n2] = cluster.owners as [FakeNode, FakeNode];
    const db = clientOf(cluster);
    const id = idInShard("doc", 1);
    n2.fault = "drop";
    await db.ops("doc", id, { do: [{ op: "inc", path: "/n", value: 1 }], upsert: true });
    expect(n2.seen.map((seen) => seen.path)).toEqual([`/v1/entities/doc/${id}/ops`]);
    const retried = cluster.entry.seen.filter((seen) => seen.path === `/v1/entities/doc/${id}/ops`);
    expect(retried).toHaveLength(1);
    expect(retried[0]?.key).toBe(n2.seen[0]?.key);
  });

  it.each([
    ["a server on its own", 0],
    ["a cluster node", 5],
  ])("when baseUrl, %s, stops answering, the call fails as it always did, and no map is asked for", async (_name, version) => {
    const cluster = await startCluster();
    cluster.topology = { ...mapOf(version, cluster.owners), shards: [] };
    const { fetch, attempts } = recordingFetch();
    const db = clientOf(cluster, { fetch, retry: { ...RETRY, maxAttempts: 2 } });
    await db.put("doc", "a", {});
    await cluster.entry.close();
    const error = await rejectionOf(db.get("doc", "a"));
    expect(error).toMatchObject({ name: "NetworkError", attempts: 2 });
    await settle();
    expect(attempts.map((attempt) => attempt.to.slice(cluster.entry.url.length + 1))).toEqual([
      "GET /v1/topology",
      "PUT /v1/entities/doc/a",
      "GET /v1/entities/doc/a",
      "GET /v1/entities/doc/a",
    ]);
    expect(db.topology()?.version).toBe(version);
  });
});

describe("when routing directly is not possible or not wanted", () => {
  const local = (version: number, urls: (string | null)[]): Topology => ({
    version,
    slots: SLOT_COUNT,
    shards: slotRanges(urls.length).map((slots, shard) => ({ shard, slots, node: "local", url: urls[shard] ?? null })),
  });

  it.each([
    ["a server on its own", () => local(0, [null, null, null])],
    [
      "version 0, even with urls",
      (owners: FakeNode[]) =>
        local(
          0,
          owners.map((owner) => owner.url),
        ),
    ],
  ])("sends everything to baseUrl for %s, and never reloads", async (_name, topology) => {
    const cluster = await startCluster();
    cluster.topology = topology(cluster.owners);
    cluster.entry.headers = { "Apostate-Served-By": "local" };
    const db = clientOf(cluster);
    for (const shard of [0, 1, 2]) {
      const id = idInShard("doc", shard);
      await db.put("doc", id, {});
      await db.get("doc", id);
    }
    await settle();
    expect(entityRequests(cluster.entry)).toHaveLength(6);
    expect(topologyLoads(cluster.entry)).toBe(1);
    expect(cluster.owners.flatMap((owner) => owner.seen)).toEqual([]);
    expect(db.topology()?.version).toBe(0);
  });

  it('sends everything to baseUrl with routing: "base", and loads no map', async () => {
    const cluster = await startCluster();
    cluster.owners.forEach((owner) => (owner.headers = { "Apostate-Map-Version": "99" }));
    cluster.entry.headers = { "Apostate-Map-Version": "99", "Apostate-Served-By": "n1" };
    const db = clientOf(cluster, { routing: "base" });
    for (const shard of [0, 1, 2]) await db.put("doc", idInShard("doc", shard), {});
    await settle();
    expect(cluster.entry.seen.map((seen) => seen.method)).toEqual(["PUT", "PUT", "PUT"]);
    expect(cluster.owners.flatMap((owner) => owner.seen)).toEqual([]);
    expect(db.topology()).toBeUndefined();
  });

  it.each([
    ["direct ", "direct "],
    ["none", "none"],
    ["an empty string", ""],
  ])("refuses routing %s", (_name, routing) => {
    expect(() => createClient({ baseUrl: "http://127.0.0.1:1", routing: routing as "direct" })).toThrow(TypeError);
  });
});

describe("a map that cannot be loaded", () => {
  const valid = mapOf(5, []);
  const shards = (...list: unknown[]) => ({ version: 5, slots: SLOT_COUNT, shards: list });
  const shard = (from: unknown, to: unknown, url: unknown = "http://127.0.0.1:1") => ({
    shard: 0,
    slots: { from, to },
    node: "n",
    url,
  });
  const cases: [string, unknown][] = [
    ["a 503", 503],
    ["a 500", 500],
    ["a 404 (a server from before clusters)", 404],
    ["a body that is not an object", ["not", "a", "map"]],
    ["no shards", { version: 5, slots: SLOT_COUNT }],
    ["another slot count", { ...valid, slots: 1024 }],
    ["a negative version", { ...valid, version: -1 }],
    ["a fractional version", { ...valid, version: 1.5 }],
    ["a version as a string", { ...valid, version: "5" }],
    ["a range past the last slot", shards(shard(0, SLOT_COUNT))],
    ["a range that ends before it starts", shards(shard(10, 9))],
    ["a range of fractions", shards(shard(0.5, 9))],
    ["two shards on one slot", shards(shard(0, 2048), shard(2048, 4095))],
    ["a url that is not one", shards(shard(0, 4095, "not a url"))],
    ["a url of another scheme", shards(shard(0, 4095, "file:///etc/passwd"))],
    ["a url that is a number", shards(shard(0, 4095, 8080))],
    ["a shard without a node", shards({ shard: 0, slots: { from: 0, to: 4095 }, url: null })],
    ["a shard that is null", shards(null)],
  ];

  it.each(cases)("leaves every call on baseUrl: %s", async (_name, topology) => {
    const cluster = await startCluster();
    cluster.topology = topology;
    const db = clientOf(cluster);
    for (const shard of [0, 1, 2]) {
      const id = idInShard("doc", shard);
      expect(await db.put("doc", id, { shard })).toMatchObject({ id, version: 1 });
      expect(await db.get("doc", id)).toMatchObject({ data: { shard } });
    }
    await settle();
    expect(db.topology()).toBeUndefined();
    expect(entityRequests(cluster.entry)).toHaveLength(6);
    expect(cluster.owners.flatMap((owner) => owner.seen)).toEqual([]);
    // A failed load is not repeated on every call: the next waits a moment.
    expect(topologyLoads(cluster.entry)).toBe(1);
  });

  it("is tried again a moment later, and then routes", async () => {
    const cluster = await startCluster();
    const good = cluster.topology;
    cluster.topology = 503;
    const db = clientOf(cluster);
    const id = idInShard("doc", 2);
    await db.put("doc", id, {});
    cluster.topology = good;
    await db.get("doc", id);
    await settle();
    expect(topologyLoads(cluster.entry)).toBe(1);

    vi.setSystemTime(Date.now() + 1_500);
    try {
      await db.get("doc", id); // still baseUrl: the reload runs in the background
      await vi.waitFor(() => expect(db.topology()?.version).toBe(5));
      await db.get("doc", id).catch(() => undefined);
    } finally {
      vi.useRealTimers();
    }
    expect(topologyLoads(cluster.entry)).toBe(2);
    expect(entityRequests(cluster.entry)).toHaveLength(3);
    expect(entityRequests(cluster.owners[2]!)).toEqual([`GET /v1/entities/doc/${id}`]);
  });

  it("that hangs holds the first calls for one attempt's timeout, then they go to baseUrl", async () => {
    const cluster = await startCluster();
    cluster.topology = "hang";
    const db = clientOf(cluster, { timeoutMs: 200 });
    const started = Date.now();
    await Promise.all([0, 1, 2].map((shard) => db.put("doc", idInShard("doc", shard), {})));
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(topologyLoads(cluster.entry)).toBe(1);
    expect(entityRequests(cluster.entry)).toHaveLength(3);
  });

  it("lets a caller's signal end the wait for the first load, and leaves the load to the others", async () => {
    const cluster = await startCluster();
    cluster.topology = "hang";
    const db = clientOf(cluster);
    const id = idInShard("doc", 1);
    const patient = db.put("doc", id, { patient: true });
    const aborted = await rejectionOf(db.get("doc", id, { signal: AbortSignal.timeout(50) }));
    expect(aborted).toMatchObject({ name: "TimeoutError" });
    expect(await rejectionOf(db.get("doc", id, { signal: AbortSignal.abort("gone") }))).toBe("gone");

    cluster.topology = mapOf(5, cluster.owners);
    cluster.release();
    expect(await patient).toMatchObject({ data: { patient: true } });
    expect(entityRequests(cluster.owners[1]!)).toEqual([`PUT /v1/entities/doc/${id}`]);
  });
});

describe("the slot the client computes", () => {
  /** FNV-1a of the bytes Node's own UTF-8 encoder makes: what the server computed before the slot function became Buffer-free. */
  function bufferSlot(type: string, id: string): number {
    let hash = 0x811c9dc5;
    for (const byte of Buffer.concat([Buffer.from(type, "utf8"), Buffer.from([0]), Buffer.from(id, "utf8")])) {
      hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
    }
    return hash % SLOT_COUNT;
  }

  it.each([
    ["ascii", "account", "alice"],
    ["empty id", "t", ""],
    ["two-byte", "compte", "élodie"],
    ["three-byte", "口座", "日本語"],
    ["four-byte (a surrogate pair)", "emoji", "😀🎉"],
    ["a lone high surrogate", "odd", "a\ud800b"],
    ["a lone low surrogate at the end", "odd", "ab\udfff"],
    ["surrogates in the wrong order", "odd", "\udc00\ud800"],
    ["the largest code point", "max", "\u{10ffff}"],
  ])("is the server's for %s keys", (_name, type, id) => {
    expect(slotOf(type, id)).toBe(bufferSlot(type, id));
  });
});
