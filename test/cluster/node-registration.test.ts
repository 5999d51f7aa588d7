import { describe, expect, it } from "vitest";
import { CLUSTER_KEYS } from "../../server/cluster/etcd-client.js";
import { NodeIdTakenError, NodeRegistration } from "../../server/cluster/node-registration.js";
import { EtcdClients, EtcdHolder, eventually } from "../support/cluster-etcd.js";

const TTL_SECONDS = 2;

const shared = EtcdClients.forFile();

describe("node registration", () => {
  it("puts {node, url} under nodes/<node>, tied to a lease with the TTL asked for", async () => {
    const name = shared.clients.newCluster();
    const { cluster } = shared.clients.connect(name);
    const self = { node: "n1", url: "http://127.0.0.1:9001" };
    await NodeRegistration.start(cluster, self, TTL_SECONDS);

    const { cluster: observer, client } = shared.clients.connect(name);
    const response = await observer.get(CLUSTER_KEYS.node("n1")).exec();
    expect(response.kvs).toHaveLength(1);
    expect(JSON.parse(response.kvs[0]!.value.toString())).toEqual(self);
    const lease = await client.leaseClient.leaseTimeToLive({ ID: response.kvs[0]!.lease });
    expect(Number(lease.grantedTTL)).toBe(TTL_SECONDS);
    expect(await client.get(`/apostate/${name}/nodes/n1`).string()).toBe(JSON.stringify(self));
  });

  it("keeps the key alive past the TTL while the node lives", async () => {
    const { cluster } = shared.clients.connect(shared.clients.newCluster());
    await NodeRegistration.start(cluster, { node: "n1", url: "http://a" }, TTL_SECONDS);
    await new Promise((resolve) => setTimeout(resolve, (TTL_SECONDS + 1.5) * 1_000));
    expect(await cluster.get(CLUSTER_KEYS.node("n1")).string()).not.toBeNull();
  });

  it("loses the key once the TTL passes after the node dies without revoking", async () => {
    const name = shared.clients.newCluster();
    const holder = await EtcdHolder.start(shared.etcd, name, { register: { node: "n1", url: "http://a" } }, TTL_SECONDS);
    const { cluster: observer } = shared.clients.connect(name);
    await holder.kill();
    const died = Date.now();

    expect(await observer.get(CLUSTER_KEYS.node("n1")).string()).not.toBeNull();
    await eventually("the dead node's key is gone", async () => (await observer.get(CLUSTER_KEYS.node("n1")).string()) === null);
    const gone = Date.now() - died;
    expect(gone).toBeGreaterThan(TTL_SECONDS * 1_000 - 1_000);
    expect(gone).toBeLessThan(TTL_SECONDS * 1_000 + 3_000);
  });

  it("removes the key at once on close()", async () => {
    const { cluster } = shared.clients.connect(shared.clients.newCluster());
    const registration = await NodeRegistration.start(cluster, { node: "n1", url: "http://a" }, 60);
    await registration.close();
    expect(await cluster.get(CLUSTER_KEYS.node("n1")).string()).toBeNull();
  });

  it("refuses a second live node with the same id, and leaves the first one's key alone", async () => {
    const name = shared.clients.newCluster();
    const first = { node: "n1", url: "http://first" };
    await NodeRegistration.start(shared.clients.connect(name).cluster, first, TTL_SECONDS);
    const { cluster } = shared.clients.connect(name);
    await expect(NodeRegistration.start(cluster, { node: "n1", url: "http://second" }, TTL_SECONDS)).rejects.toThrow(
      new NodeIdTakenError("node id n1 is held by a live node"),
    );
    expect(await cluster.get(CLUSTER_KEYS.node("n1")).string()).toBe(JSON.stringify(first));
    // the refused attempt left no lease behind to keep anything alive
    const leases = await shared.clients.connect(name).client.leaseClient.leaseLeases();
    const ids = new Set(leases.leases.map((lease) => lease.ID));
    const held = await cluster.get(CLUSTER_KEYS.node("n1")).exec();
    expect(ids.has(held.kvs[0]!.lease)).toBe(true);
  });

  it("registers again with a new lease when its lease is revoked behind its back", async () => {
    const name = shared.clients.newCluster();
    const { cluster } = shared.clients.connect(name);
    const registration = await NodeRegistration.start(cluster, { node: "n1", url: "http://a" }, TTL_SECONDS);
    const { client: admin, cluster: observer } = shared.clients.connect(name);
    const before = (await observer.get(CLUSTER_KEYS.node("n1")).exec()).kvs[0]!.lease;
    await admin.leaseClient.leaseRevoke({ ID: before });
    expect(await observer.get(CLUSTER_KEYS.node("n1")).string()).toBeNull();

    await eventually("the node is registered again", async () => (await observer.get(CLUSTER_KEYS.node("n1")).string()) !== null);
    const after = (await observer.get(CLUSTER_KEYS.node("n1")).exec()).kvs[0]!.lease;
    expect(after).not.toBe(before);
    await registration.close();
    expect(await observer.get(CLUSTER_KEYS.node("n1")).string()).toBeNull();
  });

  it("keeps trying to register again while its id is still held, reporting each failed attempt", async () => {
    const name = shared.clients.newCluster();
    const { cluster } = shared.clients.connect(name);
    const registration = await NodeRegistration.start(cluster, { node: "n1", url: "http://a" }, TTL_SECONDS);
    const failures: { error: unknown; attempt: number }[] = [];
    registration.onRetry = (error, attempt) => failures.push({ error, attempt });
    const { client: admin, cluster: observer } = shared.clients.connect(name);
    // Another holder takes the key onto its own lease, then the node's lease goes behind its back.
    const lost = (await observer.get(CLUSTER_KEYS.node("n1")).exec()).kvs[0]!.lease;
    const blocker = observer.lease(60);
    await blocker.put(CLUSTER_KEYS.node("n1")).value("held by another");
    await admin.leaseClient.leaseRevoke({ ID: lost });
    await eventually("two failed attempts", async () => failures.length >= 2);
    expect(failures.slice(0, 2).map(({ attempt }) => attempt)).toEqual([1, 2]);
    expect(failures[0]?.error).toBeInstanceOf(NodeIdTakenError);
    expect(registration.held).toBe(false);

    await blocker.revoke();
    await eventually("the node is registered again", async () => registration.held);
    expect(JSON.parse((await observer.get(CLUSTER_KEYS.node("n1")).string()) ?? "null")).toEqual({ node: "n1", url: "http://a" });
    await registration.close();
  });
});
