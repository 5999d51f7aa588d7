import { SLOT_COUNT } from "../../schema/placement.js";
import { ShardFrozenError } from "../storage/storage-errors.js";
import type { ShardPlacement, WriteGuard } from "../storage/shard.js";
import type { ShardFence } from "../storage/shard-fence.js";
import {
  followersKey,
  ownerOf,
  topologyAnswer,
  type ClusterMap,
  type LiveNode,
  type ShardAssignment,
  type TopologyAnswer,
} from "./topology.js";

/** What a node's primary tells its workers about the cluster, whenever any of it changes. */
export interface ClusterSnapshot {
  cluster: string;
  self: LiveNode;
  map: ClusterMap;
  nodes: LiveNode[];
  /** Whether the node holds its lease now (readiness). */
  leaseHeld: boolean;
  /** The cluster-wide key that signs list cursors, hex. */
  cursorSecret: string;
}

/** Primary → worker: the cluster as it is now. */
export const CLUSTER_SNAPSHOT_MESSAGE = "apostate:cluster-snapshot";
/** Worker → primary: send me the snapshot (a worker asks once it listens for messages). */
export const CLUSTER_SNAPSHOT_REQUEST = "apostate:cluster-snapshot?";

export interface ClusterSnapshotMessage {
  kind: typeof CLUSTER_SNAPSHOT_MESSAGE;
  snapshot: ClusterSnapshot;
}

export function isClusterSnapshotMessage(message: unknown): message is ClusterSnapshotMessage {
  return typeof message === "object" && message !== null && (message as { kind?: unknown }).kind === CLUSTER_SNAPSHOT_MESSAGE;
}

/** Where a slot's requests go: served here, or forwarded to the owner (`url` undefined while it holds no lease). */
export type SlotRoute =
  { local: true; shard: ShardAssignment } | { local: false; shard: ShardAssignment; url: string | undefined };

/**
 * A worker's copy of the cluster, as its primary last sent it. The request path reads only this:
 * routing, the list fan-out, `/v1/topology` and the write fence never wait for etcd.
 */
export class ClusterState {
  private current: ClusterSnapshot;
  private urls = new Map<string, string>();
  /** Every slot's route, worked out once per map: the request path only indexes it. */
  private routes: SlotRoute[] = [];
  /** Each shard's followers as {@link followersKey} gives them, worked out once per map for the write guard. */
  private followerKeys = new Map<number, string>();
  /** `Apostate-Map-Version`, as sent on every answer. */
  versionHeader = "";

  constructor(snapshot: ClusterSnapshot) {
    this.current = snapshot;
    this.update(snapshot);
  }

  update(snapshot: ClusterSnapshot): void {
    this.current = snapshot;
    this.urls = new Map(snapshot.nodes.map(({ node, url }) => [node, url]));
    this.versionHeader = String(snapshot.map.version);
    const byShard = new Map(
      snapshot.map.shards.map((shard): [number, SlotRoute] => [
        shard.shard,
        shard.node === snapshot.self.node ? { local: true, shard } : { local: false, shard, url: this.urls.get(shard.node) },
      ]),
    );
    this.followerKeys = new Map(snapshot.map.shards.map((shard) => [shard.shard, followersKey(shard.followers)]));
    this.routes = Array.from({ length: SLOT_COUNT }, (_, slot) => byShard.get(ownerOf(snapshot.map, slot).shard) as SlotRoute);
  }

  get snapshot(): ClusterSnapshot {
    return this.current;
  }

  get self(): string {
    return this.current.self.node;
  }

  route(slot: number): SlotRoute {
    const route = this.routes[slot];
    if (!route) throw new RangeError(`slot ${slot} is outside 0-${SLOT_COUNT - 1}`);
    return route;
  }

  /** The shards the map gives this node. */
  ownShards(): ShardAssignment[] {
    return this.current.map.shards.filter((shard) => shard.node === this.self);
  }

  /** Every other node that owns a shard, with its URL (undefined while it holds no lease). */
  otherOwners(): { node: string; url: string | undefined }[] {
    const nodes = new Set(this.current.map.shards.map((shard) => shard.node).filter((node) => node !== this.self));
    return [...nodes].sort().map((node) => ({ node, url: this.urls.get(node) }));
  }

  topology(): TopologyAnswer {
    return topologyAnswer(this.current.map, this.current.nodes);
  }

  /**
   * The fence every write batch passes under the shard's write lock: the map this worker holds
   * must name this node the owner at the epoch the shard file holds, with the followers the
   * file holds, and the file must not be frozen. A node with a stale map therefore writes nothing to a shard that has moved away:
   * the move froze the file before the map switched.
   */
  readonly guard: WriteGuard = (placement: ShardPlacement, fence: ShardFence) => {
    const assigned = this.current.map.shards.find((shard) => shard.shard === placement.shard);
    if (fence.frozen) throw new ShardFrozenError(`shard ${placement.shard} is frozen while it moves`);
    if (!assigned || assigned.node !== this.self || assigned.epoch !== fence.epoch) {
      throw new ShardFrozenError(
        `shard ${placement.shard} is not this node's at epoch ${fence.epoch} in map version ${this.current.map.version}`,
      );
    }
    // The node's primary stamps the map's followers into the file before its workers hear of the
    // map; a worker that has not heard yet must not acknowledge a write without a new follower.
    if (followersKey(fence.followers) !== this.followerKeys.get(placement.shard)) {
      throw new ShardFrozenError(
        `shard ${placement.shard}'s followers are ${fence.followers.join(", ") || "none"} in its file, not as in map version ${this.current.map.version}`,
      );
    }
  };
}
