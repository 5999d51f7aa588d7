import { setTimeout as sleep } from "node:timers/promises";
import type { Namespace } from "etcd3";
import type { Logger } from "pino";
import type { FailoverListener } from "../metrics/replication-metrics.js";
import type { ClusterView } from "./cluster-view.js";
import { CLUSTER_KEYS } from "./etcd-client.js";
import { callNode, NodeCallError } from "./node-call.js";
import { ReplicaKeeper } from "./replica-keeper.js";
import { placementsOf, readMap, updateMap, type ShardPlacement } from "./map-store.js";
import {
  isFinished,
  listMoves,
  MOVE_STATES,
  pruneFinishedMoves,
  saveMove,
  type MoveRecord,
  type MoveState,
  type StoredMove,
} from "./moves-store.js";
import type { ClusterMap } from "./topology.js";

/** How often the coordinator looks for work, and retries a step that failed. */
const POLL_MS = 250;
/** A catch-up that applied fewer rows than this leaves little enough for the freeze. */
const CLOSE_ENOUGH_ROWS = 500;
/** A move that makes no progress for this long (a node gone, verification failing) is aborted. */
const STALL_LIMIT_MS = 60_000;
/** How many finished moves keep their record (and answer `GET /admin/cluster/moves/{id}`). */
const FINISHED_MOVES_KEPT = 100;

interface IncomingProgress {
  sequence: number;
  applied: number;
  frozen: boolean;
}

interface Digest {
  entities: number;
  rows: number;
  checksum: string;
}

/** A step could not be taken now; the runner tries again (and aborts a move that stays stuck). */
class StepError extends Error {}

/** Where a move stands in the map: switched once the map gives the slots to the target. */
function isSwitched(map: ClusterMap, move: MoveRecord): boolean {
  if (move.kind === "split") return map.shards.some((shard) => shard.shard === move.newShard);
  return map.shards.some((shard) => shard.shard === move.shard && shard.node === move.to);
}

/**
 * The coordinator's work: keeps the replicas (ReplicaKeeper: failover and seeding), and runs the recorded moves and splits, oldest first, one step at a time,
 * recording each step in `moves/<id>` by compare-and-set. Every step can be repeated, so a
 * coordinator that takes over from a dead one resumes a move where its record says it is:
 *
 * copying → catching-up → frozen → switched → done, or aborted before the switch.
 *
 * The target node pulls the snapshot and the changes itself (the coordinator only says what to
 * do); the map switches in one compare-and-set, after the target's copy matches the frozen
 * source by count and checksum. The snapshot arrives checked against its Content-Digest, so the
 * checksum inside the freeze covers only the rows written after it: hashing every row of a
 * 100,000-entity shard there took 0.2-1 s on each node, the longest step of the freeze.
 */
export class MoveRunner {
  private running = false;
  private readonly lastProgress = new Map<string, { state: MoveState; at: number }>();

  readonly keeper: ReplicaKeeper;

  constructor(
    private readonly cluster: Namespace,
    private readonly view: ClusterView,
    private readonly options: {
      adminToken: string | undefined;
      logger: Logger;
      testHooks: boolean;
      replicas: number;
      metrics: FailoverListener;
    },
  ) {
    this.keeper = new ReplicaKeeper(cluster, view, options);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.running = false;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      let advanced = false;
      try {
        // First: a failover is the most urgent work, and a move in progress must not hold it up.
        await this.keeper.tend();
      } catch (error) {
        this.options.logger.warn({ err: error }, "tending the replicas failed; trying again");
      }
      try {
        const moves = await listMoves(this.cluster);
        await pruneFinishedMoves(this.cluster, moves, FINISHED_MOVES_KEPT);
        const next = moves.find(({ move }) => !isFinished(move));
        if (next && !(await this.pausedAt(next.move.state))) advanced = await this.advance(next);
      } catch (error) {
        this.options.logger.warn({ err: error }, "a move step failed; trying again");
      }
      // A step that went through is followed at once: the freeze lasts only as long as the work.
      if (!advanced) await sleep(POLL_MS);
    }
  }

  /** Tests hold a move at a chosen state (to kill a node there) through a key in etcd. */
  private async pausedAt(state: MoveState): Promise<boolean> {
    if (!this.options.testHooks) return false;
    const paused = await this.cluster.get(CLUSTER_KEYS.testPauseMoves).string();
    return paused !== null && MOVE_STATES.indexOf(state) >= MOVE_STATES.indexOf(paused as MoveState);
  }

  /** Takes the move's next step; false when it could not be taken now (the loop then waits a moment). */
  private async advance(stored: StoredMove): Promise<boolean> {
    const { move } = stored;
    const map = await readMap(this.cluster);
    if (!map) return false;
    if (move.state !== "switched" && isSwitched(map, move)) {
      await this.save(stored, "switched");
      return true;
    }
    try {
      await this.step(stored);
      return true;
    } catch (error) {
      if (!(error instanceof StepError)) throw error;
      const progress = this.lastProgress.get(move.id);
      if (progress?.state !== move.state) this.touch(move);
      else if (performance.now() - progress.at > STALL_LIMIT_MS) {
        // After the switch there is nothing to abort: the move waits for its target to come back.
        await this.abort(stored, map, `stuck at ${move.state}: ${error.message}`);
        return false;
      }
      this.options.logger.info({ move: move.id, state: move.state, why: error.message }, "move waits");
      return false;
    }
  }

  private async step(stored: StoredMove): Promise<void> {
    const { move } = stored;
    const incoming = move.newShard ?? move.shard;
    const source = { from: this.urlOf(move.from), source: move.shard };
    const target = this.urlOf(move.to);
    const catchUp = async () =>
      (await this.call(target, "POST", `/admin/cluster/incoming/${incoming}/catch-up`, source)) as IncomingProgress;
    const freeze = async () => {
      await this.call(source.from, "POST", `/admin/cluster/shards/${move.shard}/fence`, { frozen: true });
    };
    switch (move.state) {
      case "copying": {
        const copy = (await this.call(target, "PUT", `/admin/cluster/incoming/${incoming}`, source)) as IncomingProgress;
        await this.save({ ...stored, move: { ...move, copiedAt: copy.sequence } }, "catching-up");
        return;
      }
      case "catching-up": {
        const progress = await catchUp();
        if (progress.applied >= CLOSE_ENOUGH_ROWS) return this.touch(move);
        await freeze();
        const frozen = await this.save(stored, "frozen");
        // Straight on, without the loop's reads of etcd: the writes wait for every step from here to the switch.
        if (!(await this.pausedAt("frozen"))) await this.step(frozen);
        return;
      }
      case "frozen": {
        // Against a frozen source, a catch-up returns only once it holds every change.
        const progress = await catchUp();
        // The source was unfrozen behind the move's back (it restarted without the move's map): freeze again.
        if (!progress.frozen) return freeze();
        const range = `from=${move.slots.from}&to=${move.slots.to}${move.copiedAt === undefined ? "" : `&after=${move.copiedAt}`}`;
        const [expected, copied] = (await Promise.all([
          this.call(source.from, "GET", `/admin/cluster/shards/${move.shard}/digest?${range}`),
          this.call(target, "GET", `/admin/cluster/incoming/${incoming}/digest?${range}`),
        ])) as [Digest, Digest];
        if (expected.checksum !== copied.checksum || expected.rows !== copied.rows || expected.entities !== copied.entities) {
          throw new StepError(
            `the copy does not match the source: ${copied.rows} rows, ${copied.entities} live (${copied.checksum}) against ${expected.rows}, ${expected.entities} (${expected.checksum})`,
          );
        }
        await updateMap(this.cluster, (current) => (isSwitched(current, move) ? undefined : switchedPlacements(current, move)));
        await this.save(stored, "switched");
        return;
      }
      case "switched":
        // Done means served: the target has installed its copy at the new epoch.
        await this.call(target, "GET", `/admin/shards/${incoming}`);
        await this.save(stored, "done");
        return;
      default:
        return;
    }
  }

  /**
   * Gives up a move before its switch: the source is unfrozen, the target's copy dropped and the
   * shard marked active again. A node that cannot be reached now does its part when it comes
   * back: a frozen shard the map gives its node with no move under way is unfrozen at start-up.
   */
  private async abort(stored: StoredMove, map: ClusterMap, why: string): Promise<void> {
    const { move } = stored;
    if (isSwitched(map, move)) return;
    this.options.logger.warn({ move: move.id, why }, "aborting a move");
    const source = this.view.liveNodes.find((node) => node.node === move.from)?.url;
    const target = this.view.liveNodes.find((node) => node.node === move.to)?.url;
    await Promise.allSettled([
      source && this.call(source, "POST", `/admin/cluster/shards/${move.shard}/fence`, { frozen: false }),
      target && this.call(target, "DELETE", `/admin/cluster/incoming/${move.newShard ?? move.shard}`),
    ]);
    await updateMap(this.cluster, (current) => {
      if (isSwitched(current, move)) return undefined;
      return placementsOf(current).map((shard) => (shard.shard === move.shard ? { ...shard, state: "active" } : shard));
    });
    await this.save(stored, "aborted", why);
  }

  private touch(move: MoveRecord): void {
    this.lastProgress.set(move.id, { state: move.state, at: performance.now() });
  }

  private async save(stored: StoredMove, state: MoveState, detail: string | null = null): Promise<StoredMove> {
    const move = { ...stored.move, state, detail, updatedAt: new Date().toISOString() };
    const saved = await saveMove(this.cluster, move, stored.revision);
    this.lastProgress.set(move.id, { state, at: performance.now() });
    this.options.logger.info({ move: move.id, kind: move.kind, shard: move.shard, state }, "move advanced");
    return saved;
  }

  private urlOf(node: string): string {
    const url = this.view.liveNodes.find((live) => live.node === node)?.url;
    if (url === undefined) throw new StepError(`node ${node} holds no lease`);
    return url;
  }

  private async call(base: string, method: string, path: string, body?: object): Promise<unknown> {
    try {
      return await callNode(base, method, path, { adminToken: this.options.adminToken, ...(body && { body }) });
    } catch (error) {
      if (error instanceof NodeCallError) throw new StepError(error.message);
      throw error;
    }
  }
}

/** The map after a move's or split's switch: the slots belong to the target, at a new epoch. */
function switchedPlacements(map: ClusterMap, move: MoveRecord): ShardPlacement[] {
  const shards = placementsOf(map);
  if (move.kind === "move") {
    // A follower that becomes the owner follows itself no more.
    return shards.map((shard) =>
      shard.shard === move.shard
        ? { ...shard, node: move.to, followers: shard.followers.filter((node) => node !== move.to), state: "active" }
        : shard,
    );
  }
  const kept = shards.map((shard) =>
    shard.shard === move.shard
      ? { ...shard, slots: { from: shard.slots.from, to: move.slots.from - 1 }, state: "active" as const }
      : shard,
  );
  return [...kept, { shard: move.newShard as number, slots: { ...move.slots }, node: move.to, followers: [], state: "active" }];
}
