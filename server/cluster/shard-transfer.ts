import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { components } from "../../client/generated/openapi.js";
import { UnknownShardError } from "../admin/shard-admin.js";
import type { ShardSet } from "../storage/data-directory.js";
import type { Shard } from "../storage/shard.js";
import type { ShardChanges } from "../storage/shard-changes.js";
import type { ShardDigest } from "../storage/shard-digest.js";
import type { EntityRow, IdempotencyRow } from "../storage/tables.js";
import { InvalidTopologyRequestError, TransferError } from "./cluster-errors.js";
import { contentDigest } from "./content-digest.js";
import type { SlotRange } from "./topology.js";

type Schemas = components["schemas"];
export type ChangesAnswer = Schemas["ShardChanges"];
export type DigestAnswer = Schemas["ShardDigest"];
export type FenceAnswer = Schemas["ShardFence"];
export type IncomingProgress = Schemas["IncomingProgress"];
export type TransferSource = Schemas["TransferSource"];
export type ReplicaBatchWire = Schemas["ReplicaBatch"];
export type ReplicaAckAnswer = Schemas["ReplicaAck"];
export type ReplicaAcksWire = Schemas["ReplicaAcks"];

/** How long one catch-up call applies batches before it reports, so a caller sees progress. */
const CATCH_UP_BUDGET_MS = 1_000;
const CHANGE_BATCH = 2_000;

/** A change batch as it travels between nodes (camelCase, as openapi.yaml writes it). */
export function changesToWire(changes: ShardChanges): ChangesAnswer {
  return {
    after: changes.after,
    upTo: changes.upTo,
    frozen: changes.frozen,
    entities: changes.entities.map((row) => ({
      type: row.type,
      id: row.id,
      slot: row.slot,
      version: row.version,
      data: row.data,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      sequence: row.sequence,
    })),
    idempotency: changes.idempotency.map((row) => ({
      type: row.type,
      id: row.id,
      key: row.key,
      slot: row.slot,
      sequence: row.sequence,
      fingerprint: row.fingerprint,
      kind: row.kind,
      version: row.version,
      representation: row.representation,
      createdAt: row.created_at,
    })),
  };
}

function changesFromWire(wire: ChangesAnswer): ShardChanges {
  return {
    after: wire.after,
    upTo: wire.upTo,
    frozen: wire.frozen,
    entities: wire.entities.map((row): EntityRow => ({
      type: row.type,
      id: row.id,
      slot: row.slot,
      version: row.version,
      data: row.data,
      created_at: row.createdAt,
      updated_at: row.updatedAt,
      sequence: row.sequence,
    })),
    idempotency: wire.idempotency.map((row): IdempotencyRow => ({
      type: row.type,
      id: row.id,
      key: row.key,
      slot: row.slot,
      sequence: row.sequence,
      fingerprint: row.fingerprint,
      kind: row.kind,
      version: row.version,
      representation: row.representation,
      created_at: row.createdAt,
    })),
  };
}

function digestAnswer(shard: number, slots: SlotRange, digest: ShardDigest): DigestAnswer {
  return { shard, slots, ...digest };
}

/**
 * Both ends of a shard's transfer between nodes, as the move and split protocol uses them. The
 * source side reads its shard (snapshot, changes after a sequence, digest) and freezes it; the
 * target side pulls a snapshot into an incoming copy and tails the source's changes into it.
 * The incoming copy is not served until the map names this node its owner (serve.ts installs it).
 */
export class ShardTransfer {
  constructor(
    private readonly shards: ShardSet,
    /** The admin token this node sends to the others (a cluster's nodes share their tokens). */
    private readonly adminToken: string | undefined,
  ) {}

  /** A consistent copy of `shard` in `destination`, with the sequence it holds. */
  async snapshot(shard: number, destination: string): Promise<{ sequence: number }> {
    return this.local(shard).snapshot(destination);
  }

  changes(shard: number, after: number, limit: number): ChangesAnswer {
    return changesToWire(this.local(shard).changesAfter(after, limit));
  }

  digest(shard: number, slots?: SlotRange, after?: number): DigestAnswer {
    const found = this.local(shard);
    const range = slots ?? found.placement.slots;
    return digestAnswer(shard, range, found.digest(range, after));
  }

  /** Freezes, unfreezes or raises the epoch of a shard; an epoch below the file's is refused. */
  setFence(shard: number, change: { frozen?: boolean; epoch?: number }): FenceAnswer {
    const found = this.local(shard);
    let fence;
    try {
      fence = found.setFence(change);
    } catch (error) {
      if (error instanceof RangeError) throw new InvalidTopologyRequestError(error.message);
      throw error;
    }
    const { sequence, synced } = found.replicaState();
    return { shard, ...fence, sequence, synced };
  }

  /** Where this node's copy of the shard stands. */
  replicaState(shard: number): ReplicaAckAnswer {
    return { shard, ...this.local(shard).replicaState() };
  }

  /** A follower's side of a batch its owner ships (see Shard.applyReplica). */
  applyReplica(batch: ReplicaBatchWire): ReplicaAckAnswer {
    return { shard: batch.shard, ...this.local(batch.shard).applyReplica(batch.epoch, changesFromWire(batch.changes)) };
  }

  /** Copies a snapshot of the source's shard as incoming shard `shard`, replacing any earlier copy. */
  async copyIncoming(shard: number, source: TransferSource): Promise<IncomingProgress> {
    const file = this.shards.incomingFile(shard);
    const partial = `${file}.partial`;
    const answer = await this.call(source.from, `/admin/cluster/shards/${source.source}/snapshot`);
    const expected = answer.headers.get("content-digest");
    if (!answer.body || expected === null) {
      throw new TransferError(`node ${source.from} sent no snapshot of shard ${source.source} with its Content-Digest`);
    }
    try {
      const hash = createHash("sha256");
      await pipeline(
        Readable.fromWeb(answer.body),
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            hash.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(partial),
      );
      // The copy is then the source's shard as of its sequence, and a move verifies only the changes after it.
      const received = contentDigest(hash);
      if (received !== expected) {
        throw new TransferError(
          `the snapshot of shard ${source.source} from node ${source.from} arrived damaged: Content-Digest ${expected}, received ${received}`,
        );
      }
      await this.removeIncoming(shard);
      await rename(partial, file);
    } finally {
      await rm(partial, { force: true });
    }
    const copy = await this.shards.openIncoming(shard);
    try {
      return { shard, sequence: copy.state().sequence, applied: 0, frozen: copy.fence().frozen };
    } finally {
      copy.close();
    }
  }

  /**
   * Applies the source's changes after the incoming copy's sequence, for up to a second while
   * the source takes writes; once it is frozen, until the copy holds every change (so an answer
   * that says `frozen` means the copy is complete).
   */
  async catchUp(shard: number, source: TransferSource): Promise<IncomingProgress> {
    const copy = await this.incoming(shard);
    try {
      const started = performance.now();
      let applied = 0;
      for (;;) {
        const after = copy.state().sequence;
        const answer = await this.call(
          source.from,
          `/admin/cluster/shards/${source.source}/changes?after=${after}&limit=${CHANGE_BATCH}`,
        );
        const changes = changesFromWire((await answer.json()) as ChangesAnswer);
        copy.applyChanges(changes);
        applied += changes.entities.length;
        // A batch caps entity rows and records alike: only an empty one says the copy has everything.
        const drained = changes.entities.length === 0 && changes.idempotency.length === 0;
        if (drained || (!changes.frozen && performance.now() - started > CATCH_UP_BUDGET_MS)) {
          return { shard, sequence: copy.state().sequence, applied, frozen: changes.frozen };
        }
      }
    } finally {
      copy.close();
    }
  }

  async incomingDigest(shard: number, slots?: SlotRange, after?: number): Promise<DigestAnswer> {
    const copy = await this.incoming(shard);
    try {
      const range = slots ?? copy.placement.slots;
      return digestAnswer(shard, range, copy.digest(range, after));
    } finally {
      copy.close();
    }
  }

  async discardIncoming(shard: number): Promise<void> {
    await this.removeIncoming(shard);
  }

  private async removeIncoming(shard: number): Promise<void> {
    const file = this.shards.incomingFile(shard);
    await Promise.all(["", "-wal", "-shm"].map((suffix) => rm(`${file}${suffix}`, { force: true })));
  }

  private async incoming(shard: number): Promise<Shard> {
    try {
      return await this.shards.openIncoming(shard);
    } catch (error) {
      throw new UnknownShardError(`this node holds no incoming copy of shard ${shard}`, { cause: error });
    }
  }

  private local(shard: number): Shard {
    const found = this.shards.get(shard);
    if (!found) throw new UnknownShardError(`this node holds no shard ${shard}`);
    return found;
  }

  private async call(base: string, path: string): Promise<Response> {
    const headers: Record<string, string> = this.adminToken ? { authorization: `Bearer ${this.adminToken}` } : {};
    let answer: Response;
    try {
      answer = await fetch(new URL(path, base), { headers });
    } catch (error) {
      throw new TransferError(`node ${base} cannot be reached: ${(error as Error).message}`, { cause: error });
    }
    if (answer.status !== 200) {
      throw new TransferError(`node ${base} answered ${answer.status} to ${path}: ${await answer.text()}`);
    }
    return answer;
  }
}
