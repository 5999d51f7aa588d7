import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import type { components, operations } from "../../client/generated/openapi.js";
import { InvalidTopologyRequestError, UnknownMoveError } from "../cluster/cluster-errors.js";
import { fileContentDigest } from "../cluster/content-digest.js";
import type { ShardTransfer, TransferSource } from "../cluster/shard-transfer.js";
import type { SlotRange } from "../cluster/topology.js";
import type { ShardSet } from "../storage/data-directory.js";
import type { ApiRequest } from "./api-request.js";
import type { ControlHandler } from "./control-plane.js";
import { toProblem } from "./problem-mapper.js";
import { ProblemError } from "./problems.js";

type Schemas = components["schemas"];

/** The operator's cluster actions; absent on a server that runs on its own. */
export interface ClusterOperations {
  status(): Promise<Schemas["ClusterStatus"]>;
  move(id: string): Promise<Schemas["Move"]>;
  startMove(shard: number, to: string): Promise<Schemas["Move"]>;
  startSplit(shard: number): Promise<Schemas["Move"]>;
  rebalance(): Promise<Schemas["Move"][]>;
}

const DEFAULT_CHANGE_LIMIT = 2_000;

function notACluster(): never {
  throw new InvalidTopologyRequestError("this server runs on its own, not as a cluster node (start it with --etcd)");
}

/** The server on its own, described as a cluster of one node called `local`. */
function singleNodeStatus(shards: ShardSet): Schemas["ClusterStatus"] {
  const ids = shards.shards.map((shard) => shard.placement.shard);
  return {
    cluster: null,
    node: null,
    mapVersion: 0,
    coordinator: null,
    nodes: [{ node: "local", url: null, alive: true, shards: ids }],
    shards: shards.shards.map(({ placement }) => ({
      shard: placement.shard,
      slots: { ...placement.slots },
      node: "local",
      followers: [],
      epoch: 0,
      state: "active",
      replication: [],
    })),
    moves: [],
  };
}

/**
 * `/admin/cluster/...`: the operator's view and actions, and what nodes call on each other while
 * a shard moves (snapshot, changes, digest, fence on the source; the incoming copy on the target).
 */
export function clusterHandlers(deps: { admin: ClusterOperations | undefined; shards: ShardSet; transfer: ShardTransfer }) {
  const { admin, shards, transfer } = deps;
  const cluster = (): ClusterOperations => admin ?? notACluster();
  return {
    getCluster: async (_req, res) => {
      res.json(admin ? await admin.status() : singleNodeStatus(shards));
    },

    startMove: async (req, res) => {
      const { shard, to } = req.body as { shard: number; to: string };
      res.status(202).json(await cluster().startMove(shard, to));
    },

    startSplit: async (req, res) => {
      const { shard } = req.body as { shard: number };
      res.status(202).json(await cluster().startSplit(shard));
    },

    rebalance: async (_req, res) => {
      res.status(202).json({ moves: await cluster().rebalance() });
    },

    getMove: async (req, res) => {
      if (!admin) throw new UnknownMoveError(`no move or split has id ${req.params.move}: this server is not a cluster node`);
      res.json(await admin.move(req.params.move ?? ""));
    },

    getShardSnapshot: async (req, res) => {
      const shard = shardOf(req);
      if (req.method === "HEAD") {
        res.setHeader("Apostate-Sequence", String(transfer.digest(shard).sequence));
        res.status(200).end();
        return;
      }
      const file = join(dirname(shards.incomingFile(shard)), `.snapshot-${shard}-${randomBytes(6).toString("hex")}.sqlite`);
      try {
        const { sequence } = await transfer.snapshot(shard, file);
        res.setHeader("Apostate-Sequence", String(sequence));
        // The target checks the copy against it: a move then verifies only what changed after `sequence`.
        res.setHeader("Content-Digest", await fileContentDigest(file));
        res.setHeader("Content-Type", "application/vnd.sqlite3");
        await new Promise<void>((resolve, reject) => {
          const stream = createReadStream(file);
          stream.on("error", reject);
          res.on("close", resolve);
          stream.pipe(res);
        });
      } finally {
        await rm(file, { force: true });
      }
    },

    getShardChanges: (req, res) => {
      const { after, limit } = req.query;
      res.json(transfer.changes(shardOf(req), Number(after), limit === undefined ? DEFAULT_CHANGE_LIMIT : Number(limit)));
    },

    getShardDigest: (req, res) => {
      res.json(transfer.digest(shardOf(req), slotsOf(req), afterOf(req)));
    },

    setShardFence: (req, res) => {
      if (!admin) notACluster();
      res.json(transfer.setFence(shardOf(req), req.body as { frozen?: boolean; epoch?: number }));
    },

    getReplicaState: (req, res) => {
      res.json(transfer.replicaState(shardOf(req)));
    },

    applyReplicas: (req, res) => {
      if (!admin) notACluster();
      const { batches } = req.body as Schemas["ReplicaBatches"];
      if (new Set(batches.map(({ shard }) => shard)).size !== batches.length) {
        throw new InvalidTopologyRequestError("a shard is named twice: one batch per shard");
      }
      // Each shard is its own file and answers for itself: a refused batch does not refuse the others.
      const acks = batches.map((batch): Schemas["ReplicaAcks"]["acks"][number] => {
        try {
          return transfer.applyReplica(batch);
        } catch (error) {
          const problem = toProblem(error);
          if (!(problem instanceof ProblemError)) throw error;
          return { shard: batch.shard, refused: problem.toBody(req.originalUrl) };
        }
      });
      res.json({ acks });
    },

    copyIncoming: async (req, res) => {
      if (!admin) notACluster();
      res.json(await transfer.copyIncoming(shardOf(req), req.body as TransferSource));
    },

    catchUpIncoming: async (req, res) => {
      if (!admin) notACluster();
      res.json(await transfer.catchUp(shardOf(req), req.body as TransferSource));
    },

    getIncomingDigest: async (req, res) => {
      res.json(await transfer.incomingDigest(shardOf(req), slotsOf(req), afterOf(req)));
    },

    discardIncoming: async (req, res) => {
      await transfer.discardIncoming(shardOf(req));
      res.status(204).end();
    },
  } satisfies Partial<Record<keyof operations, ControlHandler>>;
}

function shardOf(req: ApiRequest): number {
  return Number(req.params.shard);
}

/** The `from`/`to` range of a digest request; undefined when neither is given (the whole shard). */
function slotsOf(req: ApiRequest): SlotRange | undefined {
  const { from, to } = req.query;
  if (from === undefined && to === undefined) return undefined;
  if (from === undefined || to === undefined || Number(from) > Number(to)) {
    throw new ProblemError("invalid-query", "a slot range needs both from and to, with from <= to");
  }
  return { from: Number(from), to: Number(to) };
}

/** The sequence a digest's checksum starts after, when the request gives one (validated as an integer of 0 or more). */
function afterOf(req: ApiRequest): number | undefined {
  const { after } = req.query;
  return after === undefined ? undefined : Number(after);
}
