import { existsSync } from "node:fs";
import type { Logger } from "pino";
import type { ShardSet } from "../storage/data-directory.js";
import { DataDirectoryError } from "../storage/storage-errors.js";
import type { ShardFence } from "../storage/shard-fence.js";
import type { Shard } from "../storage/shard.js";
import { ClusterMember } from "./cluster-member.js";
import type { FailoverListener } from "../metrics/replication-metrics.js";
import type { ClusterSnapshot } from "./cluster-state.js";
import { CLUSTER_KEYS, clusterNamespace, connectEtcd, retryWhileRecoverable, withinDeadline } from "./etcd-client.js";
import { readMap } from "./map-store.js";
import { MoveRunner } from "./move-runner.js";
import { followersKey, type ClusterMap, type ShardAssignment, type SlotRange } from "./topology.js";

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
  replicas: number;
  /** Where the coordinator's failovers and seedings are counted. */
  metrics: FailoverListener;
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
    // A leftover (see isLeftover) is dropped below; a copy the map knows nothing of, or one at
    // a newer epoch than the map's, is not this node's to hold: the map may not be this cluster's.
    const strangers = shards.shards.filter((shard) => {
      const entry = map.shards.find((candidate) => candidate.shard === shard.placement.shard);
      return !(entry && (isHeldBy(entry, options.node) || isLeftover(shard.fence(), entry)));
    });
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
    // The first failure and then one in ten: enough to tell an etcd that is away from a key that does not expire.
    member.registration.onRetry = (error, attempt) => {
      if (attempt % 10 === 1) options.logger.warn({ err: error, attempt }, "could not register again yet; still trying");
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
        retryWhileRecoverable(() => readMap(clusterNamespace(client, options.cluster))),
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
      replicas: this.options.replicas,
      metrics: this.options.metrics,
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
    const followed = latest.shards.filter((shard) => shard.followers.includes(this.options.node));
    for (const assignment of followed) await this.followShard(assignment);
    this.applied = latest;
    for (const shard of this.shards.shards) {
      const id = shard.placement.shard;
      const entry = latest.shards.find((candidate) => candidate.shard === id);
      if (this.drops.has(id) || !entry || isHeldBy(entry, this.options.node)) continue;
      const fence = shard.fence();
      if (!isLeftover(fence, entry)) continue;
      // Frozen, a leftover takes no owner's batch: a worker that has not reloaded yet would
      // acknowledge what a copy about to be dropped holds.
      if (!fence.frozen) shard.setFence({ frozen: true });
      this.scheduleDrop(id);
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
    this.cancelDrop(shard);
    const incoming = this.shards.incomingFile(shard);
    let local = this.shards.get(shard);
    const heldEpoch = local?.fence().epoch ?? 0;
    if (local && heldEpoch !== 0 && heldEpoch !== epoch && existsSync(incoming)) {
      // A copy left from before the shard moved away, and the shard has come back: the new copy wins.
      await this.replaceLocal(shard);
      local = undefined;
    }
    if (!local) {
      if (!existsSync(incoming) && !(await this.shards.reclaimInterruptedInstall(shard, epoch))) {
        logger.error({ shard, epoch }, "the map gives this node a shard it holds no copy of");
        return;
      }
      local = await this.shards.install({ shard, slots }, incoming, epoch);
      logger.info({ shard, slots, epoch }, "shard installed from its moved copy");
    }
    await this.narrowAfterSplit(local, slots);
    // A reshape may reopen the shard: take the one held now.
    const held = this.shards.get(shard) ?? local;
    const fence = held.fence();
    // The map gave the shard to this node at a newer epoch than its file holds: a founding
    // node's first epoch, or the coordinator handing it back after a failover that did not happen.
    if (fence.epoch < epoch) {
      held.setFence({ epoch });
      if (fence.epoch !== 0) logger.info({ shard, from: fence.epoch, epoch }, "shard's epoch raised by the map");
    }
    // Every write batch checks this list under the write lock: from here on none is
    // acknowledged without the followers the map names.
    if (followersKey(fence.followers) !== followersKey(assignment.followers)) {
      held.setFence({ followers: assignment.followers });
      logger.info({ shard, followers: assignment.followers }, "shard's followers set");
      // A follower joins the map when its seeding has caught up: the tail that read this
      // copy's change feed is over, and its indexes would slow every write from now on.
      const added = assignment.followers.some((follower) => !fence.followers.includes(follower));
      if (added && assignment.state === "active") held.dropChangeFeedIndexes();
    }
    if (fence.frozen && assignment.state === "active") {
      held.setFence({ frozen: false });
      logger.info({ shard }, "shard unfrozen: no move or split is under way");
    }
  }

  /**
   * A shard this node follows: the copy a seeding left in the incoming file replaces whatever
   * copy the node held (a stale one from before a failover, or one the map let go and took back
   * without this node seeing it go; the fresh copy is not in sync until its first batch), and a held
   * copy is narrowed with its owner after a split. Its epoch and rows then come from the owner's
   * batches.
   */
  private async followShard(assignment: ShardAssignment): Promise<void> {
    const { shard, slots, epoch } = assignment;
    const { logger } = this.options;
    this.cancelDrop(shard);
    const incoming = this.shards.incomingFile(shard);
    // While the shard moves, an incoming copy here is the move's (this node is its target), not a seeding's.
    if (assignment.state === "active" && existsSync(incoming)) {
      await this.replaceLocal(shard);
      await this.shards.install({ shard, slots }, incoming, epoch);
      logger.info({ shard, slots, epoch }, "follower's copy installed from its seeding");
      return;
    }
    const local = this.shards.get(shard);
    if (!local) {
      logger.error({ shard, epoch }, "the map names this node a follower of a shard it holds no copy of");
      return;
    }
    await this.narrowAfterSplit(local, slots);
  }

  private cancelDrop(shard: number): void {
    clearTimeout(this.drops.get(shard));
    this.drops.delete(shard);
  }

  /** Cuts a copy (owned or followed) to the range the map gives its shard now, after a split. */
  private async narrowAfterSplit(local: Shard, slots: SlotRange): Promise<void> {
    const held = local.placement.slots;
    if (held.from === slots.from && held.to === slots.to) return;
    await this.shards.reshape(local.placement.shard, slots);
    this.options.logger.info({ shard: local.placement.shard, slots }, "copy narrowed to its range after a split");
  }

  /**
   * Drops the node's copy of `shard`, frozen first: a worker that still has the old file open
   * then refuses the owner's batches until it reloads, instead of taking them into a file that is
   * gone.
   */
  private async replaceLocal(shard: number): Promise<void> {
    const local = this.shards.get(shard);
    if (!local) return;
    local.setFence({ frozen: true });
    await this.shards.drop(shard);
  }

  private scheduleDrop(shard: number): void {
    this.drops.set(
      shard,
      setTimeout(() => {
        this.drops.delete(shard);
        this.enqueue(async () => {
          const entry = this.member.view.map?.shards.find((candidate) => candidate.shard === shard);
          const owner = entry?.node;
          if ((entry && isHeldBy(entry, this.options.node)) || !this.shards.get(shard)) return;
          await this.shards.drop(shard);
          this.options.logger.info({ shard, owner }, "shard dropped: it lives on another node now");
          this.publish();
        });
      }, DROP_GRACE_MS),
    );
  }
}

/** Whether the map gives `node` a copy of the shard: as its owner or one of its followers. */
function isHeldBy(entry: ShardAssignment, node: string): boolean {
  return entry.node === node || entry.followers.includes(node);
}

/**
 * Whether a copy the map does not give this node is a leftover to drop: a move's frozen source,
 * or a copy at an epoch no newer than the map's (a follower the map let go, or a shard that
 * failed over from this node). A copy at a newer epoch is a follower fenced for a failover that
 * has not reached the map yet, and is kept.
 */
function isLeftover(fence: ShardFence, entry: ShardAssignment): boolean {
  return fence.frozen || fence.epoch <= entry.epoch;
}
