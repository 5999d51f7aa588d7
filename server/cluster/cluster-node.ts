import { existsSync } from "node:fs";
import type { Logger } from "pino";
import type { ShardSet } from "../storage/data-directory.js";
import { DataDirectoryError } from "../storage/storage-errors.js";
import { ClusterMember } from "./cluster-member.js";
import type { ClusterSnapshot } from "./cluster-state.js";
import { CLUSTER_KEYS, clusterNamespace, connectEtcd, withinDeadline } from "./etcd-client.js";
import { readMap } from "./map-store.js";
import { MoveRunner } from "./move-runner.js";
import type { ClusterMap, ShardAssignment } from "./topology.js";

const HOLD_RECHECK_MS = 300;

/** How long a starting node waits for etcd before it gives up. */
const ETCD_START_WAIT_MS = 10_000;

/** How long a node keeps a shard that moved away, for requests already on their way, before it deletes it. */
const DROP_GRACE_MS = 10_000;

export interface ClusterNodeOptions {
  etcd: readonly string[];
  cluster: string;
  node: string;
  advertise: string;
  leaseTtlSeconds: number;
  adminToken: string | undefined;
  logger: Logger;
}

/**
 * A node's primary in a cluster: its membership (lease, watched map, coordinator campaign), the
 * reconciliation of its data directory with the map, and the snapshot it sends its workers.
 *
 * Whenever the map changes, the node makes its shard files agree with it before its workers hear
 * of the change: a shard the map newly gives it is installed from the copy a move pulled (at the
 * shard's new epoch), a shard a split narrowed is cut to its range, a founding node's shards are
 * stamped with their first epoch, a frozen shard whose move was aborted is unfrozen, and a shard
 * that moved away is deleted after a grace period. Changes are applied one at a time, in order.
 */
export class ClusterNode {
  private queue: Promise<void> = Promise.resolve();
  private readonly drops = new Map<number, NodeJS.Timeout>();
  private runner: MoveRunner | undefined;
  private listener: (snapshot: ClusterSnapshot) => void = () => {};
  private recheck: NodeJS.Timeout | undefined;
  private applied: ClusterMap | undefined;
  private readonly testHooks = process.env.APOSTATE_TEST_HOOKS === "1";

  private constructor(
    private readonly member: ClusterMember,
    private readonly shards: ShardSet,
    private readonly options: ClusterNodeOptions,
  ) {}

  static async join(shards: ShardSet, options: ClusterNodeOptions): Promise<ClusterNode> {
    // The campaign may win before the node exists; it then starts coordinating just below.
    const joined: { node?: ClusterNode } = {};
    const member = await ClusterMember.join({
      etcd: options.etcd,
      cluster: options.cluster,
      self: { node: options.node, url: options.advertise },
      leaseTtlSeconds: options.leaseTtlSeconds,
      ranges: [...shards.shards].sort((a, b) => a.placement.shard - b.placement.shard).map((shard) => shard.placement.slots),
      coordinator: {
        elected: () => joined.node?.coordinate(true),
        deposed: () => joined.node?.coordinate(false),
      },
    });
    const node = new ClusterNode(member, shards, options);
    joined.node = node;
    if (member.candidate.isCoordinator) node.coordinate(true);
    const map = member.view.map;
    if (!map) throw new Error("the cluster has no map after joining it");
    const strangers = shards.shards.filter(
      (shard) =>
        !map.shards.some((entry) => entry.shard === shard.placement.shard && entry.node === options.node) &&
        !shard.fence().frozen,
    );
    if (strangers.length > 0) {
      await member.leave();
      throw new DataDirectoryError(
        `${shards.directory} holds shard ${strangers.map((shard) => shard.placement.shard).join(", ")}, which the map of cluster ` +
          `${options.cluster} does not give to node ${options.node}: start a joining node with an empty data directory`,
      );
    }
    await node.reconcile(map);
    member.view.subscribe((change) => {
      if (change.kind === "map") node.enqueue(() => node.reconcile(change.map));
      else if (change.kind === "nodes") node.enqueue(async () => node.publish());
      else options.logger.error({ err: change.error }, "someone wrote an invalid cluster map; keeping the last valid one");
    });
    member.registration.onChange = (held) => {
      options.logger[held ? "info" : "warn"]({ held }, held ? "lease held again" : "lease lost; registering again");
      node.enqueue(async () => node.publish());
    };
    return node;
  }

  /**
   * Whether the cluster has a map already, which decides how a new data directory starts: with
   * `--shards` shards that found the cluster, or empty, joining it.
   */
  static async mapExists(options: Pick<ClusterNodeOptions, "etcd" | "cluster">): Promise<boolean> {
    const client = connectEtcd(options.etcd);
    try {
      const map = await withinDeadline(
        readMap(clusterNamespace(client, options.cluster)),
        ETCD_START_WAIT_MS,
        () => new Error(`etcd at ${options.etcd.join(", ")} did not answer within ${ETCD_START_WAIT_MS / 1000} s`),
      );
      return map !== undefined;
    } finally {
      client.close();
    }
  }

  /** Calls `listener` with the snapshot after every change the workers must hear of. */
  onSnapshot(listener: (snapshot: ClusterSnapshot) => void): void {
    this.listener = listener;
  }

  /** The cluster as the workers must see it: the last map the shard files were brought in line with. */
  snapshot(): ClusterSnapshot {
    const map = this.applied;
    if (!map) throw new Error("the cluster node has not applied a map yet");
    return {
      cluster: this.options.cluster,
      self: { node: this.options.node, url: this.options.advertise },
      map,
      nodes: this.member.view.liveNodes,
      leaseHeld: this.member.registration.held,
      cursorSecret: this.member.cursorSecret.toString("hex"),
    };
  }

  async leave(): Promise<void> {
    this.runner?.stop();
    clearTimeout(this.recheck);
    for (const timer of this.drops.values()) clearTimeout(timer);
    await this.queue;
    await this.member.leave();
  }

  private coordinate(elected: boolean): void {
    if (!elected) {
      this.runner?.stop();
      return;
    }
    this.runner ??= new MoveRunner(this.member.cluster, this.member.view, {
      adminToken: this.options.adminToken,
      logger: this.options.logger,
      testHooks: this.testHooks,
    });
    this.options.logger.info("elected coordinator");
    this.runner.start();
  }

  private enqueue(work: () => Promise<void>): void {
    this.queue = this.queue.then(work).catch((error: unknown) => {
      this.options.logger.error({ err: error }, "could not bring the shards in line with the cluster map");
    });
  }

  private publish(): void {
    this.listener(this.snapshot());
  }

  private async reconcile(map: ClusterMap): Promise<void> {
    if (await this.mapHeldBack()) return;
    // A newer map may have arrived while this one waited its turn; only the latest one counts.
    const latest = this.member.view.map ?? map;
    // Shards held already first: a split's source is narrowed before its new half is installed.
    const mine = latest.shards
      .filter((shard) => shard.node === this.options.node)
      .sort((a, b) => Number(this.shards.get(a.shard) === undefined) - Number(this.shards.get(b.shard) === undefined));
    for (const assignment of mine) await this.holdShard(assignment);
    this.applied = latest;
    const owned = new Set(mine.map((shard) => shard.shard));
    for (const shard of this.shards.shards) {
      const id = shard.placement.shard;
      // Only a shard a move froze has a copy elsewhere; any other is kept whatever the map says.
      if (!owned.has(id) && !this.drops.has(id) && shard.fence().frozen) this.scheduleDrop(id);
    }
    this.publish();
  }

  /**
   * The test hook behind the fencing test: with APOSTATE_TEST_HOOKS=1 and the key
   * `test/hold-map/<node>` in etcd, the node ignores map changes (as if its watch were late)
   * and looks again shortly, applying the latest map once the key is gone.
   */
  private async mapHeldBack(): Promise<boolean> {
    if (!this.testHooks) return false;
    const held = (await this.member.cluster.get(CLUSTER_KEYS.testHoldMap(this.options.node)).string()) !== null;
    if (held && !this.recheck) {
      this.recheck = setTimeout(() => {
        this.recheck = undefined;
        const map = this.member.view.map;
        if (map) this.enqueue(() => this.reconcile(map));
      }, HOLD_RECHECK_MS);
    }
    return held;
  }

  private async holdShard(assignment: ShardAssignment): Promise<void> {
    const { shard, slots, epoch } = assignment;
    const { logger } = this.options;
    const pending = this.drops.get(shard);
    if (pending) {
      clearTimeout(pending);
      this.drops.delete(shard);
    }
    const incoming = this.shards.incomingFile(shard);
    let local = this.shards.get(shard);
    const heldEpoch = local?.fence().epoch ?? 0;
    if (local && heldEpoch !== 0 && heldEpoch !== epoch && existsSync(incoming)) {
      // A copy left from before the shard moved away, and the shard has come back: the new copy wins.
      await this.shards.drop(shard);
      local = undefined;
    }
    if (!local) {
      if (!existsSync(incoming)) {
        logger.error({ shard, epoch }, "the map gives this node a shard it holds no copy of");
        return;
      }
      await this.shards.install({ shard, slots }, incoming, epoch);
      logger.info({ shard, slots, epoch }, "shard installed from its moved copy");
      return;
    }
    if (local.placement.slots.from !== slots.from || local.placement.slots.to !== slots.to) {
      await this.shards.reshape(shard, slots);
      logger.info({ shard, slots }, "shard narrowed to its range after a split");
    }
    // A reshape may reopen the shard: take the one held now.
    const held = this.shards.get(shard) ?? local;
    const fence = held.fence();
    if (fence.epoch === 0) held.setFence({ epoch });
    if (fence.frozen && assignment.state === "active") {
      held.setFence({ frozen: false });
      logger.info({ shard }, "shard unfrozen: no move or split is under way");
    }
  }

  private scheduleDrop(shard: number): void {
    this.drops.set(
      shard,
      setTimeout(() => {
        this.drops.delete(shard);
        this.enqueue(async () => {
          const owner = this.member.view.map?.shards.find((entry) => entry.shard === shard)?.node;
          if (owner === this.options.node || !this.shards.get(shard)) return;
          await this.shards.drop(shard);
          this.options.logger.info({ shard, owner }, "shard dropped: it lives on another node now");
          this.publish();
        });
      }, DROP_GRACE_MS),
    );
  }
}
