import type { Namespace } from "etcd3";
import type { Logger } from "pino";
import type { FailoverListener } from "../metrics/replication-metrics.js";
import type { ClusterView } from "./cluster-view.js";
import { CLUSTER_KEYS, modRevision } from "./etcd-client.js";
import { decodeMap, placementsOf, updateMap } from "./map-store.js";
import { callNode } from "./node-call.js";
import type { FenceAnswer, IncomingProgress } from "./shard-transfer.js";
import type { ClusterMap, ShardAssignment } from "./topology.js";

/** A seeding's catch-up that applied fewer rows than this is close enough to add the follower. */
const CLOSE_ENOUGH_ROWS = 500;
/** A seeding gives up (and is tried again later) after this many catch-up rounds. */
const CATCH_UP_ROUNDS = 60;
/** How long a failover waits for a follower to take the new epoch before it goes on without it. */
const FENCE_WAIT_MS = 2_000;
/** How long a seeding waits for one step (the copy of a whole shard, or a round of its tail). */
const SEED_STEP_WAIT_MS = 120_000;
/**
 * While a step runs, the target is asked for `/healthz` this often (each ask waiting as long):
 * a node that holds its lease but does not answer (hung, or cut off from its peers) would
 * otherwise hold its seeding for the whole step wait.
 */
const SEED_PROBE_MS = 2_000;
/** Probes missed in a row that abandon a seeding. */
const SEED_PROBE_MISSES = 3;
/**
 * How long a node that stopped answering during a seeding is not chosen again, so that the shard
 * goes to another. (A seeding that fails at once, say on a node still starting, is tried again
 * the next round.)
 */
const SEED_RETRY_AFTER_MS = 30_000;

export interface ReplicaKeeperOptions {
  /** Copies of each shard, the owner's included. */
  replicas: number;
  adminToken: string | undefined;
  logger: Logger;
  metrics: FailoverListener;
}

/**
 * The coordinator's care of replicas: failover of the shards whose owner's lease is gone, and
 * a follower seeded for every shard with fewer than `replicas - 1` live ones.
 *
 * Failover fences before it promotes. It asks every live follower to take an epoch above any
 * the map has given (etcd's revision plus one): from then on those copies refuse the old
 * owner's batches, and since the owner needs every follower, it can acknowledge nothing more,
 * however long it was paused. Of the followers that answered in sync, the one with the highest
 * sequence becomes the owner, at that epoch, in one compare-and-set that holds only if the map
 * still names the old owner; the others stay its followers (their copies are prefixes of its
 * history, as every batch reached all of them before it was acknowledged).
 *
 * Seeding uses the move protocol's copy and tail on the new follower, then one compare-and-set
 * adds it to the shard's followers. The owner's node then stamps the new list into its file,
 * and the follower is in sync from the first batch it applies. Seedings run one per target node
 * at a time, side by side, so a target that is slow or stops answering holds up only its own;
 * one that stops answering is given up as soon as it misses its probes, and passed over for a
 * while, so its shard is seeded on another node.
 */
export class ReplicaKeeper {
  /** The seedings in flight: each shard being seeded, with its target node. */
  private readonly seedings = new Map<number, string>();
  /** Nodes that stopped answering during a seeding, with when they may be chosen again. */
  private readonly failedTargets = new Map<string, number>();
  /**
   * Shards given back to their dead owner at this epoch (no follower could take over): not tried
   * again while that owner stays away, as each try would only raise the epoch once more. Once it
   * is back the wait is over: should it die again, its shard fails over like any other.
   */
  private readonly waitingForOwner = new Map<number, number>();

  constructor(
    private readonly cluster: Namespace,
    private readonly view: ClusterView,
    private readonly options: ReplicaKeeperOptions,
  ) {}

  /**
   * One round: every failover due, then every seeding due started in the background.
   * It decides from the node's watched copy of the map, so a round with nothing to do sends etcd
   * nothing (the coordinator runs one every quarter second); every change it makes is a
   * compare-and-set against the map in etcd.
   */
  async tend(): Promise<void> {
    const map = this.view.map;
    if (!map) return;
    const live = new Set(this.view.liveNodes.map((node) => node.node));
    for (const entry of map.shards) {
      if (live.has(entry.node)) {
        this.waitingForOwner.delete(entry.shard);
        continue;
      }
      const candidates = entry.followers.filter((node) => live.has(node));
      if (candidates.length === 0 || this.waitingForOwner.get(entry.shard) === entry.epoch) continue;
      await this.failOver(entry, candidates);
    }
    if (this.options.replicas > 1) {
      for (const { entry, target } of this.dueSeedings(this.view.map, live)) {
        this.seedings.set(entry.shard, target);
        this.seed(entry, target)
          .catch((error: unknown) =>
            this.options.logger.warn({ shard: entry.shard, target, err: error }, "seeding a follower failed"),
          )
          .finally(() => this.seedings.delete(entry.shard));
      }
    }
  }

  private async failOver(entry: ShardAssignment, candidates: string[]): Promise<void> {
    const { logger } = this.options;
    // The watched map may lag behind etcd's (a failover of a moment ago): fencing on it would
    // raise the copies of the owner just promoted above its own epoch. So the decision is
    // checked against etcd first, and the new epoch taken from the same read.
    const response = await this.cluster.get(CLUSTER_KEYS.map).exec();
    const kv = response.kvs[0];
    const stored =
      kv && decodeMap(kv.value.toString(), modRevision(kv)).shards.find((candidate) => candidate.shard === entry.shard);
    if (!stored || stored.node !== entry.node || stored.epoch !== entry.epoch) return;
    const epoch = Number(response.header.revision) + 1;
    const answers = await Promise.allSettled(
      candidates.map(async (node) => {
        const fence = (await callNode(this.urlOf(node), "POST", `/admin/cluster/shards/${entry.shard}/fence`, {
          adminToken: this.options.adminToken,
          body: { epoch },
          timeoutMs: FENCE_WAIT_MS,
        })) as FenceAnswer;
        return { node, fence };
      }),
    );
    const fenced = answers.flatMap((answer) => (answer.status === "fulfilled" ? [answer.value] : []));
    const chosen = fenced.filter(({ fence }) => fence.synced).sort((a, b) => b.fence.sequence - a.fence.sequence)[0];
    const followers = fenced.map(({ node }) => node).filter((node) => node !== chosen?.node);
    let promoted = false;
    let changedMeanwhile = false;
    await updateMap(this.cluster, (current) => {
      const now = current.shards.find((candidate) => candidate.shard === entry.shard);
      changedMeanwhile = !now || now.node !== entry.node || now.epoch !== entry.epoch;
      if (changedMeanwhile) return undefined;
      // The fenced followers refuse the owner's batches from now on. If it is back, or no
      // follower can take over, the owner is given the new epoch too, so it can write again.
      const ownerBack = this.view.liveNodes.some((node) => node.node === entry.node);
      promoted = chosen !== undefined && !ownerBack;
      return placementsOf(current).map((placement) =>
        placement.shard !== entry.shard
          ? placement
          : promoted && chosen
            ? { ...placement, node: chosen.node, followers, failoverEpoch: epoch }
            : { ...placement, failoverEpoch: epoch },
      );
    });
    if (changedMeanwhile) return;
    if (!promoted || !chosen) {
      this.waitingForOwner.set(entry.shard, epoch);
      logger.error(
        { shard: entry.shard, owner: entry.node, answered: fenced.map(({ node }) => node) },
        "the owner's lease is gone, or was, but no follower in sync could take over: the owner keeps the shard at a new epoch",
      );
      return;
    }
    this.options.metrics.failedOver(entry.shard);
    logger.warn(
      { shard: entry.shard, from: entry.node, to: chosen.node, sequence: chosen.fence.sequence, epoch, followers },
      "owner's lease is gone: promoted its most advanced follower",
    );
  }

  /**
   * The active shards of live owners with fewer live followers than they should have and no
   * seeding in flight, each with a node to seed: one that holds fewest copies (those being seeded
   * counted), is seeding nothing else, and has not stopped answering a seeding lately.
   */
  private dueSeedings(map: ClusterMap | undefined, live: ReadonlySet<string>): { entry: ShardAssignment; target: string }[] {
    if (!map) return [];
    const now = performance.now();
    const copies = new Map<string, number>([...live].map((node) => [node, 0]));
    const count = (node: string) => {
      const held = copies.get(node);
      if (held !== undefined) copies.set(node, held + 1);
    };
    for (const entry of map.shards) for (const node of [entry.node, ...entry.followers]) count(node);
    const busy = new Set(this.seedings.values());
    for (const node of busy) count(node);
    const due: { entry: ShardAssignment; target: string }[] = [];
    for (const entry of map.shards) {
      if (entry.state !== "active" || !live.has(entry.node) || this.seedings.has(entry.shard)) continue;
      if (entry.followers.filter((node) => live.has(node)).length >= this.options.replicas - 1) continue;
      const target = [...live]
        .filter((node) => node !== entry.node && !entry.followers.includes(node) && !busy.has(node))
        .filter((node) => (this.failedTargets.get(node) ?? 0) <= now)
        .sort((a, b) => (copies.get(a) ?? 0) - (copies.get(b) ?? 0) || a.localeCompare(b))[0];
      if (!target) continue;
      due.push({ entry, target });
      busy.add(target);
      count(target);
    }
    return due;
  }

  /**
   * Copies the shard to `target` and tails it until close, then adds `target` to its followers,
   * in place of any that holds no lease, if the map still names the same owner at the same epoch.
   */
  private async seed(entry: ShardAssignment, target: string): Promise<void> {
    const { shard } = entry;
    const targetUrl = this.urlOf(target);
    const source = { from: this.urlOf(entry.node), source: shard };
    const watchdog = this.watch(targetUrl);
    const call = (method: string, path: string, body?: object) =>
      callNode(targetUrl, method, path, {
        adminToken: this.options.adminToken,
        timeoutMs: SEED_STEP_WAIT_MS,
        signal: watchdog.signal,
        ...(body && { body }),
      });
    this.options.logger.info({ shard, owner: entry.node, target }, "seeding a follower");
    try {
      await call("PUT", `/admin/cluster/incoming/${shard}`, source);
      for (let round = 0; ; round++) {
        const progress = (await call("POST", `/admin/cluster/incoming/${shard}/catch-up`, source)) as IncomingProgress;
        if (progress.applied < CLOSE_ENOUGH_ROWS) break;
        if (round >= CATCH_UP_ROUNDS) throw new Error(`the copy of shard ${shard} on ${target} does not catch up`);
      }
    } catch (error) {
      if (watchdog.signal.aborted) this.failedTargets.set(target, performance.now() + SEED_RETRY_AFTER_MS);
      throw error;
    } finally {
      watchdog.stop();
    }
    const live = new Set(this.view.liveNodes.map((node) => node.node));
    const written = await updateMap(this.cluster, (current) => {
      const now = current.shards.find((candidate) => candidate.shard === shard);
      if (!now || now.node !== entry.node || now.epoch !== entry.epoch || now.state !== "active") return undefined;
      const kept = now.followers.filter((node) => live.has(node));
      // Another round added one meanwhile (this one decided from a watched map a moment old).
      if (now.followers.includes(target) || kept.length >= this.options.replicas - 1) return undefined;
      const followers = [...kept, target];
      return placementsOf(current).map((placement) => (placement.shard === shard ? { ...placement, followers } : placement));
    });
    if (!written.shards.some((candidate) => candidate.shard === shard && candidate.followers.includes(target))) {
      await call("DELETE", `/admin/cluster/incoming/${shard}`);
      return;
    }
    this.options.metrics.followerAdded(shard);
    this.options.logger.info({ shard, owner: entry.node, follower: target }, "follower added");
  }

  /**
   * Probes `url`'s `/healthz` every {@link SEED_PROBE_MS} until stopped; `signal` aborts once
   * {@link SEED_PROBE_MISSES} probes in a row got no answer.
   */
  private watch(url: string): { signal: AbortSignal; stop: () => void } {
    const controller = new AbortController();
    let misses = 0;
    const probe = setInterval(() => {
      callNode(url, "GET", "/healthz", { adminToken: this.options.adminToken, timeoutMs: SEED_PROBE_MS })
        .then(() => (misses = 0))
        .catch(() => {
          misses += 1;
          if (misses >= SEED_PROBE_MISSES) controller.abort(new Error(`${url} did not answer ${misses} probes in a row`));
        });
    }, SEED_PROBE_MS);
    return { signal: controller.signal, stop: () => clearInterval(probe) };
  }

  private urlOf(node: string): string {
    const url = this.view.liveNodes.find((live) => live.node === node)?.url;
    if (url === undefined) throw new Error(`node ${node} holds no lease`);
    return url;
  }
}
