import type { Etcd3, Namespace } from "etcd3";
import type { components } from "../../client/generated/openapi.js";
import { UnknownShardError } from "../admin/shard-admin.js";
import { InvalidTopologyRequestError, ShardInMotionError, TopologyUnavailableError, UnknownMoveError } from "./cluster-errors.js";
import type { ClusterState } from "./cluster-state.js";
import { currentCoordinator } from "./coordinator-election.js";
import { clusterNamespace, connectEtcd, withinDeadline } from "./etcd-client.js";
import { placementsOf, readMap, StaleMapError, updateMap } from "./map-store.js";
import { callNode } from "./node-call.js";
import { createMoves, isFinished, listMoves, newMoveId, readMove, type MoveRecord } from "./moves-store.js";
import { rebalancePlan, type ClusterMap, type ShardAssignment, type ShardMove } from "./topology.js";

export type ClusterStatus = components["schemas"]["ClusterStatus"];
export type MoveAnswer = components["schemas"]["Move"];
type ReplicationAnswer = ClusterStatus["shards"][number]["replication"][number];
type ReplicaState = components["schemas"]["ReplicaAck"];

/** How long the status waits for a copy's figures before it shows them as unknown. */
const STATE_WAIT_MS = 500;

/** How long an operator's request waits for etcd before it answers 503. */
const ETCD_WAIT_MS = 3_000;
const CREATE_ATTEMPTS = 10;

function moveAnswer(move: MoveRecord): MoveAnswer {
  const { id, kind, shard, newShard, from, to, state, detail, createdAt, updatedAt } = move;
  return { id, kind, shard, newShard, from, to, state, detail, createdAt, updatedAt };
}

/** etcd's answer to an operator's request, or 503 once it has not come within {@link ETCD_WAIT_MS}. */
async function fromEtcd<T>(work: Promise<T>): Promise<T> {
  try {
    return await withinDeadline(
      work,
      ETCD_WAIT_MS,
      () => new TopologyUnavailableError("etcd does not answer: the cluster's topology cannot change now"),
    );
  } catch (error) {
    const answered = [
      TopologyUnavailableError,
      InvalidTopologyRequestError,
      ShardInMotionError,
      UnknownShardError,
      UnknownMoveError,
    ];
    if (answered.some((kind) => error instanceof kind)) throw error;
    throw new TopologyUnavailableError(`etcd failed: ${(error as Error).message}`, { cause: error });
  }
}

function shardIn(map: ClusterMap, shard: number): ShardAssignment {
  const found = map.shards.find((entry) => entry.shard === shard);
  if (!found) throw new UnknownShardError(`the cluster has no shard ${shard}`);
  return found;
}

/**
 * The operator's actions on a cluster (`/admin/cluster/...`): its status, and moves, splits and
 * rebalancing asked for. A request only records what is to be done, by compare-and-set in etcd;
 * the coordinator does it. The map and nodes come from the node's cached copy, the rest from etcd.
 */
export class ClusterAdmin {
  private etcd: Etcd3 | undefined;
  private namespace: Namespace | undefined;

  constructor(
    private readonly options: { etcd: readonly string[]; cluster: string; adminToken: string | undefined },
    private readonly state: ClusterState,
  ) {}

  async status(): Promise<ClusterStatus> {
    const { map, nodes, self, cluster } = this.state.snapshot;
    const [coordinator, moves] = await fromEtcd(
      Promise.all([currentCoordinator(this.etcdCluster()), listMoves(this.etcdCluster())]),
    );
    const alive = new Map(nodes.map(({ node, url }) => [node, url]));
    const names = [...new Set([...alive.keys(), ...map.shards.map((shard) => shard.node)])].sort();
    return {
      cluster,
      node: self.node,
      mapVersion: map.version,
      coordinator: coordinator ?? null,
      nodes: names.map((node) => ({
        node,
        url: alive.get(node) ?? null,
        alive: alive.has(node),
        shards: map.shards.filter((shard) => shard.node === node).map((shard) => shard.shard),
      })),
      shards: await Promise.all(
        map.shards.map(async ({ shard, slots, node, followers, epoch, state }) => ({
          shard,
          slots,
          node,
          followers,
          epoch,
          state,
          replication: await this.replication(shard, node, followers, alive),
        })),
      ),
      moves: moves.map(({ move }) => moveAnswer(move)),
    };
  }

  /** Each follower's copy of `shard` as it answers now, against the owner's sequence. */
  private async replication(
    shard: number,
    owner: string,
    followers: readonly string[],
    urls: ReadonlyMap<string, string>,
  ): Promise<ReplicationAnswer[]> {
    if (followers.length === 0) return [];
    const ask = async (node: string): Promise<ReplicaState | undefined> => {
      const url = urls.get(node);
      if (url === undefined) return undefined;
      return (await callNode(url, "GET", `/admin/cluster/shards/${shard}/replica`, {
        adminToken: this.options.adminToken,
        timeoutMs: STATE_WAIT_MS,
      }).catch(() => undefined)) as ReplicaState | undefined;
    };
    const [ownerState, ...states] = await Promise.all([owner, ...followers].map(ask));
    return followers.map((node, index) => {
      const state = states[index];
      return {
        node,
        sequence: state?.sequence ?? null,
        lag: state && ownerState ? Math.max(0, ownerState.sequence - state.sequence) : null,
        synced: state?.synced ?? null,
      };
    });
  }

  async move(id: string): Promise<MoveAnswer> {
    const stored = await fromEtcd(readMove(this.etcdCluster(), id));
    if (!stored) throw new UnknownMoveError(`no move or split has id ${id}`);
    return moveAnswer(stored.move);
  }

  async startMove(shard: number, to: string): Promise<MoveAnswer> {
    const [move] = await this.create((map) => {
      const current = shardIn(map, shard);
      if (!this.state.snapshot.nodes.some((node) => node.node === to)) {
        throw new InvalidTopologyRequestError(`node ${to} is not alive in the cluster`);
      }
      if (current.node === to) throw new InvalidTopologyRequestError(`shard ${shard} is on node ${to} already`);
      return [{ shard, from: current.node, to }];
    });
    return move as MoveAnswer;
  }

  async startSplit(shard: number): Promise<MoveAnswer> {
    const [split] = await this.create((map) => {
      const current = shardIn(map, shard);
      if (current.slots.from === current.slots.to)
        throw new InvalidTopologyRequestError(`shard ${shard} holds one slot: it cannot be split`);
      return [{ shard, from: current.node, to: current.node, split: true }];
    });
    return split as MoveAnswer;
  }

  async rebalance(): Promise<MoveAnswer[]> {
    return this.create((map) =>
      rebalancePlan(
        map,
        this.state.snapshot.nodes.map((node) => node.node),
      ),
    );
  }

  /**
   * Drops a follower that stopped answering from `shard`, by compare-and-set, and only while the
   * map still names this node the owner at `epoch` with that follower: the owner's writes then
   * go on without it. The node's own copy of the map follows through its watch.
   */
  async dropFollower(shard: number, follower: string, epoch: number): Promise<void> {
    const self = this.state.self;
    await fromEtcd(
      updateMap(this.etcdCluster(), (map) => {
        const entry = map.shards.find((candidate) => candidate.shard === shard);
        if (!entry || entry.node !== self || entry.epoch !== epoch || !entry.followers.includes(follower)) return undefined;
        return placementsOf(map).map((placement) =>
          placement.shard === shard
            ? { ...placement, followers: placement.followers.filter((name) => name !== follower) }
            : placement,
        );
      }),
    );
  }

  close(): void {
    this.etcd?.close();
  }

  /**
   * Plans moves against the current map and records them with the map that marks their shards
   * busy, in one compare-and-set; a lost compare plans again against the newer map.
   */
  private async create(plan: (map: ClusterMap) => (ShardMove & { split?: boolean })[]): Promise<MoveAnswer[]> {
    const cluster = this.etcdCluster();
    return fromEtcd(
      (async () => {
        for (let attempt = 1; ; attempt++) {
          const map = await readMap(cluster);
          if (!map) throw new TopologyUnavailableError("the cluster has no map yet");
          const planned = plan(map);
          const active = (await listMoves(cluster)).filter(({ move }) => !isFinished(move));
          const records = planned.map((step, index) =>
            this.record(
              map,
              step,
              index,
              active.map(({ move }) => move),
            ),
          );
          if (records.length === 0) return [];
          const kinds = new Map(records.map((record) => [record.shard, record.kind]));
          const shards = placementsOf(map).map((entry) => {
            const kind = kinds.get(entry.shard);
            return kind ? { ...entry, state: kind === "split" ? ("splitting" as const) : ("moving" as const) } : entry;
          });
          try {
            await createMoves(cluster, map, shards, records);
            return records.map(moveAnswer);
          } catch (error) {
            if (!(error instanceof StaleMapError) || attempt >= CREATE_ATTEMPTS) throw error;
          }
        }
      })(),
    );
  }

  private record(map: ClusterMap, step: ShardMove & { split?: boolean }, index: number, active: MoveRecord[]): MoveRecord {
    const current = shardIn(map, step.shard);
    if (current.state !== "active" || active.some((move) => move.shard === step.shard || move.newShard === step.shard)) {
      throw new ShardInMotionError(`shard ${step.shard} is busy with another move or split`);
    }
    const now = new Date().toISOString();
    const { from, to } = current.slots;
    const middle = from + Math.ceil((to - from + 1) / 2);
    const newShard = step.split
      ? Math.max(...map.shards.map((shard) => shard.shard), ...active.map((move) => move.newShard ?? -1)) + 1
      : null;
    return {
      id: newMoveId(Date.now() + index),
      kind: step.split ? "split" : "move",
      shard: step.shard,
      newShard,
      slots: step.split ? { from: middle, to } : { from, to },
      from: step.from,
      to: step.to,
      state: "copying",
      detail: null,
      createdAt: now,
      updatedAt: now,
    };
  }

  private etcdCluster(): Namespace {
    if (!this.namespace) {
      this.etcd = connectEtcd(this.options.etcd);
      this.namespace = clusterNamespace(this.etcd, this.options.cluster);
    }
    return this.namespace;
  }
}
