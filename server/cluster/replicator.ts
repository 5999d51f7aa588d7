import { setTimeout as sleep } from "node:timers/promises";
import type { Pool } from "undici";
import type * as Undici from "undici";
import type { Logger } from "pino";
import type { ReplicaBatch } from "../storage/shard.js";
import type { ShardChanges } from "../storage/shard-changes.js";
import type { ReplicaAck } from "../storage/shard-replication.js";
import { ShardBusyError, ShardFrozenError } from "../storage/storage-errors.js";
import type { ReplicationListener } from "../metrics/replication-metrics.js";
import type { ClusterState } from "./cluster-state.js";
import { changesToWire, type ReplicaAcksWire, type ReplicaBatchWire } from "./shard-transfer.js";

/** A follower that has not acknowledged for this long is dropped from the map (by compare-and-set). */
const FOLLOWER_DROP_AFTER_MS = 2_000;
/** How soon a batch is sent again to a follower that did not take it. */
const RETRY_MS = 25;
/**
 * A batch that finds a gap is first sent again a few times: the gap is usually another worker's
 * batch, still on its way. After that the owner sends what lies between, read from its file.
 */
const GAP_RETRIES = 4;
const FILL_BATCH = 2_000;

export interface ReplicatorOptions {
  /** The worker's view of the cluster (followers, their URLs, this node's ownership). */
  state: () => ClusterState | undefined;
  /** The changes of this node's copy after a sequence, for a follower that has a gap. */
  changesAfter: (shard: number, after: number, limit: number) => ShardChanges;
  /** Asks for the follower's drop from the map (compare-and-set, while this node owns the shard at `epoch`). */
  dropFollower: (shard: number, follower: string, epoch: number) => Promise<void>;
  adminToken: string | undefined;
  /** How long a write waits for its followers before it answers 503 (it stays committed here). */
  busyTimeoutMs: number;
  logger: Logger;
  metrics: ReplicationListener;
}

/** The batches waiting for the next request to one follower, and whether one is in flight. */
interface Outbox {
  sending: boolean;
  queue: { batch: ReplicaBatchWire; resolve: (ack: ReplicaAck) => void; reject: (error: unknown) => void }[];
}

interface Waiting {
  batch: ReplicaBatch;
  queuedAt: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * The owner's side of replication, in each worker: every committed batch of a shard with
 * followers is shipped to all of them, and its writes are acknowledged once all have applied it.
 * One shipment per shard is in flight at a time; the batches that commit meanwhile ship together
 * as one, so replication costs a round trip per group of commits, not per write. The shipments
 * of all this worker's shards to one follower share its requests (see send).
 *
 * A follower that answers with a newer epoch has been promoted, or fenced for a promotion: the
 * batch fails (503) and so does every later one, until the map says who owns the shard now. A
 * follower that does not answer is dropped from the map after {@link FOLLOWER_DROP_AFTER_MS};
 * the batch then needs it no more. Past `busyTimeoutMs` the batch answers 503.
 */
export class Replicator {
  private readonly lanes = new Map<number, { busy: boolean; waiting: Waiting[] }>();
  private readonly pools = new Map<string, Pool>();
  private readonly outboxes = new Map<string, Outbox>();

  /** undici is loaded here, on a cluster node only, as the forwarder loads it. */
  static async create(options: ReplicatorOptions): Promise<Replicator> {
    return new Replicator(options, await import("undici"));
  }

  private constructor(
    private readonly options: ReplicatorOptions,
    private readonly undici: typeof Undici,
  ) {}

  /** Ships `batch`; resolves once every follower it names holds it (or has been dropped). */
  readonly ship = (batch: ReplicaBatch): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      let lane = this.lanes.get(batch.shard);
      if (!lane) this.lanes.set(batch.shard, (lane = { busy: false, waiting: [] }));
      lane.waiting.push({ batch, queuedAt: performance.now(), resolve, reject });
      if (!lane.busy) void this.drain(batch.shard);
    });

  private async drain(shard: number): Promise<void> {
    const lane = this.lanes.get(shard);
    if (!lane) return;
    lane.busy = true;
    while (lane.waiting.length > 0) {
      const group = leadingGroup(lane.waiting);
      lane.waiting.splice(0, group.length);
      const merged = mergeBatches(group.map((waiting) => waiting.batch));
      const deadline = Math.min(...group.map((waiting) => waiting.queuedAt)) + this.options.busyTimeoutMs;
      const { metrics } = this.options;
      try {
        await Promise.all(
          merged.followers.map(async (follower) => {
            const sequence = await this.deliver(merged, follower, deadline);
            // What this worker has committed since, and the follower does not hold yet.
            const committed = lane.waiting.at(-1)?.batch.changes.upTo ?? sequence;
            metrics.lag(shard, follower, Math.max(0, committed - sequence));
          }),
        );
        metrics.shipped(shard, (performance.now() - (group[0] as Waiting).queuedAt) / 1_000);
        for (const waiting of group) waiting.resolve();
      } catch (error) {
        metrics.failed(shard);
        for (const waiting of group) waiting.reject(error);
      }
    }
    lane.busy = false;
  }

  /**
   * Sends the batch to one follower until it holds it (resolves to the follower's sequence), it
   * is dropped (resolves to the batch's end), or the batch must fail.
   */
  private async deliver(batch: ReplicaBatch, follower: string, deadline: number): Promise<number> {
    let changes = batch.changes;
    let gaps = 0;
    let failingSince: number | undefined;
    let dropAsked = false;
    for (;;) {
      const standing = this.standing(batch, follower);
      if (standing === "dropped") return batch.changes.upTo;
      let ack: ReplicaAck | undefined;
      const attemptedAt = performance.now();
      try {
        if (standing === undefined) throw new Error(`follower ${follower} holds no lease`);
        ack = await this.send(standing, batch.shard, batch.epoch, changes);
        failingSince = undefined;
      } catch (error) {
        // From the start of the first attempt that failed: one that hung counts its whole wait.
        failingSince ??= attemptedAt;
        if (!dropAsked && performance.now() - failingSince >= FOLLOWER_DROP_AFTER_MS) {
          dropAsked = true;
          this.options.logger.warn({ shard: batch.shard, follower, err: error }, "follower does not answer: dropping it");
          this.options.dropFollower(batch.shard, follower, batch.epoch).catch((dropError: unknown) => {
            dropAsked = false;
            this.options.logger.warn({ shard: batch.shard, follower, err: dropError }, "could not drop the follower");
          });
        }
      }
      if (ack?.applied) {
        if (ack.sequence >= batch.changes.upTo) return ack.sequence;
        // A fill from the file ended short of the batch: send the rest.
        changes = this.options.changesAfter(batch.shard, ack.sequence, FILL_BATCH);
        continue;
      }
      if (ack && ack.epoch > batch.epoch) {
        throw new ShardFrozenError(
          `shard ${batch.shard}: follower ${follower} holds epoch ${ack.epoch}, above this node's ${batch.epoch}: another node owns it now`,
        );
      }
      if (ack && (gaps += 1) > GAP_RETRIES) {
        changes = this.options.changesAfter(batch.shard, ack.sequence, FILL_BATCH);
        continue;
      }
      if (performance.now() > deadline) {
        throw new ShardBusyError(`shard ${batch.shard}: follower ${follower} has not applied the write in time`);
      }
      await sleep(RETRY_MS);
    }
  }

  /**
   * Where the follower stands for this batch in the worker's map: its URL, undefined while it
   * holds no lease, or "dropped" once the map no longer names it. A map that no longer names this
   * node the owner at the batch's epoch fails the batch.
   */
  private standing(batch: ReplicaBatch, follower: string): string | undefined | "dropped" {
    const state = this.options.state();
    const assigned = state?.snapshot.map.shards.find((shard) => shard.shard === batch.shard);
    if (!state || !assigned || assigned.node !== state.self || assigned.epoch !== batch.epoch) {
      throw new ShardFrozenError(`shard ${batch.shard} is no longer this node's at epoch ${batch.epoch}`);
    }
    if (!assigned.followers.includes(follower)) return "dropped";
    return state.snapshot.nodes.find((node) => node.node === follower)?.url;
  }

  /**
   * One shard's batch for the follower at `base`. While a request to that follower is in flight,
   * the batches of this worker's other shards that follow it wait, and then go together in the
   * next one: a follower then costs a round trip per group of commits, not per shard. Resolves to
   * the follower's answer for this shard; a refusal (a shard it does not hold, a frozen copy) or
   * a request that fails rejects.
   */
  private send(base: string, shard: number, epoch: number, changes: ShardChanges): Promise<ReplicaAck> {
    return new Promise<ReplicaAck>((resolve, reject) => {
      let outbox = this.outboxes.get(base);
      if (!outbox) this.outboxes.set(base, (outbox = { sending: false, queue: [] }));
      outbox.queue.push({ batch: { shard, epoch, changes: changesToWire(changes) }, resolve, reject });
      if (!outbox.sending) void this.flush(base, outbox);
    });
  }

  private async flush(base: string, outbox: Outbox): Promise<void> {
    outbox.sending = true;
    while (outbox.queue.length > 0) {
      const sending = outbox.queue.splice(0);
      try {
        const acks = await this.post(
          base,
          sending.map(({ batch }) => batch),
        );
        sending.forEach((item, index) => {
          const ack = acks[index];
          if (!ack) item.reject(new Error(`${base} answered no ack for shard ${item.batch.shard}`));
          else if ("refused" in ack) item.reject(new Error(`${base} refused shard ${ack.shard}: ${ack.refused.detail}`));
          else item.resolve(ack);
        });
      } catch (error) {
        for (const item of sending) item.reject(error);
      }
      // The shards just answered queue their next batches a few promise steps later; without
      // this pause the one left waiting would go alone, and the two would take turns for ever.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    outbox.sending = false;
  }

  /**
   * One request on a keep-alive pool of the follower's (undici's own request: `fetch` builds a
   * request object, headers and a body stream for each on top of it); no answer within
   * {@link FOLLOWER_DROP_AFTER_MS} fails it, as a follower cut off by the network would
   * otherwise hold the batches until TCP gives up.
   */
  private async post(base: string, batches: ReplicaBatchWire[]): Promise<ReplicaAcksWire["acks"]> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.options.adminToken) headers.authorization = `Bearer ${this.options.adminToken}`;
    const answer = await this.poolFor(base).request({
      path: "/admin/cluster/replica",
      method: "POST",
      headers,
      body: JSON.stringify({ batches }),
    });
    const text = await answer.body.text();
    if (answer.statusCode !== 200) throw new Error(`${base} answered ${answer.statusCode}: ${text}`);
    return (JSON.parse(text) as ReplicaAcksWire).acks;
  }

  private poolFor(base: string): Pool {
    let pool = this.pools.get(base);
    if (!pool) {
      pool = new this.undici.Pool(base, {
        connectTimeout: FOLLOWER_DROP_AFTER_MS,
        headersTimeout: FOLLOWER_DROP_AFTER_MS,
        bodyTimeout: FOLLOWER_DROP_AFTER_MS,
      });
      this.pools.set(base, pool);
    }
    return pool;
  }
}

/**
 * The waiting batches at the head of the lane that can ship as one: the same epoch and
 * followers, and each starting where the one before it ended. Another worker's batch may lie
 * between two of this worker's, and a merge across it would skip its rows.
 */
function leadingGroup(waiting: readonly Waiting[]): Waiting[] {
  const group = [waiting[0] as Waiting];
  const key = (batch: ReplicaBatch) => `${batch.epoch}:${batch.followers.join(",")}`;
  for (const next of waiting.slice(1)) {
    const last = (group.at(-1) as Waiting).batch;
    if (key(next.batch) !== key(last) || next.batch.changes.after !== last.changes.upTo) break;
    group.push(next);
  }
  return group;
}

/** Batches of one shard as one: from the first's start to the last's end, every row of each. */
function mergeBatches(batches: readonly ReplicaBatch[]): ReplicaBatch {
  const first = batches[0] as ReplicaBatch;
  if (batches.length === 1) return first;
  return {
    ...first,
    changes: {
      after: first.changes.after,
      upTo: (batches.at(-1) as ReplicaBatch).changes.upTo,
      entities: batches.flatMap((batch) => batch.changes.entities),
      idempotency: batches.flatMap((batch) => batch.changes.idempotency),
      frozen: false,
    },
  };
}
