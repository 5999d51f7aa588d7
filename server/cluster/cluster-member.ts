import { setTimeout as sleep } from "node:timers/promises";
import type { Etcd3, Namespace } from "etcd3";
import { ClusterView } from "./cluster-view.js";
import { CoordinatorCandidate, type CoordinatorListeners } from "./coordinator-election.js";
import { clusterCursorSecret } from "./cursor-secret.js";
import { clusterNamespace, connectEtcd, retryWhileRecoverable } from "./etcd-client.js";
import { createMapIfAbsent, readMap } from "./map-store.js";
import { NodeIdTakenError, NodeRegistration } from "./node-registration.js";
import { firstNodeShards, type LiveNode, type SlotRange } from "./topology.js";

export interface ClusterMemberOptions {
  etcd: readonly string[];
  cluster: string;
  self: LiveNode;
  leaseTtlSeconds: number;
  /** The slot ranges of this node's shards: they become the map if this node founds the cluster. */
  ranges: readonly SlotRange[];
  coordinator: CoordinatorListeners;
}

/**
 * One node's membership in a cluster: registered under its lease, holding a watched copy of
 * the map, campaigning for coordinator, with the cluster's cursor secret. The first node of a
 * new cluster creates the map with all shards its own; a node that joins later owns nothing
 * until shards move to it.
 *
 * @example
 * const member = await ClusterMember.join({ etcd: ["http://127.0.0.1:2379"], cluster: "prod",
 *   self: { node: "n1", url: "http://10.0.0.1:8080" }, leaseTtlSeconds: 10, ranges, coordinator });
 * member.view.map; // serve from this copy
 * await member.leave();
 */
export class ClusterMember {
  private constructor(
    private readonly client: Etcd3,
    /** The cluster's keys in etcd. */
    readonly cluster: Namespace,
    readonly view: ClusterView,
    readonly cursorSecret: Buffer,
    readonly registration: NodeRegistration,
    readonly candidate: CoordinatorCandidate,
  ) {}

  /** Joins; an overloaded etcd is waited out (see retryWhileRecoverable). */
  static join(options: ClusterMemberOptions): Promise<ClusterMember> {
    return retryWhileRecoverable(() => ClusterMember.joinOnce(options));
  }

  private static async joinOnce(options: ClusterMemberOptions): Promise<ClusterMember> {
    const client = connectEtcd(options.etcd);
    let registration: NodeRegistration | undefined;
    try {
      const cluster = clusterNamespace(client, options.cluster);
      registration = await registerOnceFree(cluster, options.self, options.leaseTtlSeconds);
      // Only a cluster without a map is founded, by a node whose shards then cover every slot;
      // a node that joins, or restarts with shards the map gave it, reads the map that is there.
      if (!(await readMap(cluster))) await createMapIfAbsent(cluster, firstNodeShards(options.self.node, options.ranges));
      const view = await ClusterView.open(cluster);
      const cursorSecret = await clusterCursorSecret(cluster);
      const candidate = CoordinatorCandidate.start(cluster, options.self.node, options.leaseTtlSeconds, options.coordinator);
      return new ClusterMember(client, cluster, view, cursorSecret, registration, candidate);
    } catch (error) {
      await registration?.close().catch(() => undefined);
      client.close();
      throw error;
    }
  }

  /** Leaves at once: resigns as coordinator and revokes the lease, so the node key goes now. */
  async leave(): Promise<void> {
    try {
      await this.candidate.stop();
      await this.view.close();
      await this.registration.close();
    } finally {
      // with etcd away the revoke fails; the lease then ends by itself after the TTL
      this.client.close();
    }
  }
}

const REGISTER_RETRY_MS = 500;

/**
 * Registers the node, waiting while its id is still held: a node restarted after `kill -9`
 * finds its dead predecessor's key until that lease runs out (at most the TTL). Past the TTL and
 * a margin the id is held by a live process, and starting fails.
 */
async function registerOnceFree(cluster: Namespace, self: LiveNode, ttlSeconds: number): Promise<NodeRegistration> {
  const deadline = performance.now() + (ttlSeconds + 2) * 1000;
  for (;;) {
    try {
      return await NodeRegistration.start(cluster, self, ttlSeconds);
    } catch (error) {
      if (!(error instanceof NodeIdTakenError) || performance.now() > deadline) throw error;
      await sleep(REGISTER_RETRY_MS);
    }
  }
}
