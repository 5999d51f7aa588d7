import { setTimeout as sleep } from "node:timers/promises";
import type { Lease, Namespace } from "etcd3";
import { CLUSTER_KEYS } from "./etcd-client.js";
import type { LiveNode } from "./topology.js";

const REREGISTER_DELAY_MS = 1_000;

/** Another live process already holds this node id. */
export class NodeIdTakenError extends Error {}

/**
 * `nodes/<node>` → `{node, url}`, tied to a lease that is kept alive while this process lives.
 * When the process dies its key disappears once the lease runs out. When the lease is lost
 * while the process lives (etcd was away longer than the TTL), it registers again with a new
 * lease until `close()`.
 *
 * @example
 * const registration = await NodeRegistration.start(cluster, { node: "n1", url }, 10);
 * await registration.close(); // revokes the lease: the key goes at once
 */
export class NodeRegistration {
  private lease: Lease;
  private closed = false;
  private holding = true;
  /** Called whenever the node loses its lease or holds one again. */
  onChange: (held: boolean) => void = () => {};
  /** Called when an attempt to register again fails (the `attempt`th since the lease was lost). */
  onRetry: (error: unknown, attempt: number) => void = () => {};

  private constructor(
    private readonly cluster: Namespace,
    readonly self: LiveNode,
    private readonly ttlSeconds: number,
    lease: Lease,
  ) {
    this.lease = lease;
    this.watchForLoss(lease);
  }

  /** Registers `self`; `NodeIdTakenError` when a live node already holds its id. */
  static async start(cluster: Namespace, self: LiveNode, ttlSeconds: number): Promise<NodeRegistration> {
    return new NodeRegistration(cluster, self, ttlSeconds, await register(cluster, self, ttlSeconds));
  }

  /** Whether the node holds its lease now (its key is in etcd). */
  get held(): boolean {
    return this.holding;
  }

  /** Revokes the lease, so the node leaves the cluster now rather than after the TTL. */
  async close(): Promise<void> {
    this.closed = true;
    await this.lease.revoke();
  }

  private watchForLoss(lease: Lease): void {
    lease.once("lost", () => void this.registerAgain());
  }

  private async registerAgain(): Promise<void> {
    this.holding = false;
    this.onChange(false);
    for (let attempt = 1; !this.closed; attempt++) {
      try {
        this.lease = await register(this.cluster, this.self, this.ttlSeconds);
        if (this.closed) await this.lease.revoke();
        else {
          this.watchForLoss(this.lease);
          this.holding = true;
          this.onChange(true);
        }
        return;
      } catch (error) {
        // etcd is still away, or the old key has not expired yet: try again shortly
        this.onRetry(error, attempt);
        await sleep(REREGISTER_DELAY_MS);
      }
    }
  }
}

async function register(cluster: Namespace, self: LiveNode, ttlSeconds: number): Promise<Lease> {
  const lease = cluster.lease(ttlSeconds);
  try {
    const result = await cluster
      .if(CLUSTER_KEYS.node(self.node), "Create", "==", 0)
      .then(lease.put(CLUSTER_KEYS.node(self.node)).value(JSON.stringify(self)))
      .commit();
    if (!result.succeeded) throw new NodeIdTakenError(`node id ${self.node} is held by a live node`);
    return lease;
  } catch (error) {
    await lease.revoke().catch(() => undefined);
    throw error;
  }
}
