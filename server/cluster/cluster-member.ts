import { setTimeout as sleep } from "node:timers/promises";
import { isRecoverableError, type Etcd3, type Namespace } from "etcd3";
import { ClusterView } from "./cluster-view.js";
import { CoordinatorCandidate, type CoordinatorListeners } from "./coordinator-election.js";
import { clusterCursorSecret } from "./cursor-secret.js";
import { clusterNamespace, connectEtcd } from "./etcd-client.js";
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

  /**
   * Joins, trying again for up to {@link JOIN_RETRY_MS} while etcd answers with an error it
   * calls recoverable (an overloaded etcd says "too many requests"): a start-up should wait that
   * out, as it waits for etcd to answer at all.
   */
  static async join(options: ClusterMemberOptions): Promise<ClusterMember> {
    const deadline = performance.now() + JOIN_RETRY_MS;
    for (;;) {
      try {
        return await ClusterMember.joinOnce(options);
      } catch (error) {
        if (!(error instanceof Error && isRecoverableError(error)) || performance.now() > deadline) throw error;
        await sleep(REGISTER_RETRY_MS);
      }
    }
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
/** How long a start-up tries again to join while etcd is overloaded. */
const JOIN_RETRY_MS = 10_000;

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
