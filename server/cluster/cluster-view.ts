import { setTimeout as sleep } from "node:timers/promises";
import type { IKeyValue, Namespace, Watcher } from "etcd3";
import { CLUSTER_KEYS, modRevision } from "./etcd-client.js";
import { decodeMap } from "./map-store.js";
import { InvalidClusterMapError, type ClusterMap, type LiveNode } from "./topology.js";

/** One change the view saw, in etcd's order. */
export type ClusterChange =
  | { kind: "map"; map: ClusterMap }
  | { kind: "nodes"; nodes: LiveNode[] }
  /** Someone wrote a map that is not valid; the view keeps serving the last valid one. */
  | { kind: "invalid-map"; error: InvalidClusterMapError };
export type ClusterListener = (change: ClusterChange) => void;

const RELOAD_RETRY_MS = 1_000;

/** A node's registration, or undefined when the value is not one (it is then left out). */
function decodeNode(kv: IKeyValue): LiveNode | undefined {
  try {
    const { node, url } = JSON.parse(kv.value.toString()) as Partial<LiveNode>;
    return typeof node === "string" && typeof url === "string" ? { node, url } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A cached copy of the cluster's map and live nodes, kept current by one watch on the cluster's
 * keys. The request path reads only this copy: while etcd is away the view keeps serving the
 * last map, and when etcd comes back the watch resumes from the last revision it saw, so no
 * change is missed and listeners see every change in order. When etcd has compacted past that
 * revision, the view loads everything again.
 *
 * @example
 * const view = await ClusterView.open(cluster);
 * const stop = view.subscribe((change) => { if (change.kind === "map") reroute(change.map); });
 */
export class ClusterView {
  private currentMap: ClusterMap | undefined;
  private readonly nodes = new Map<string, LiveNode>();
  private readonly listeners = new Set<ClusterListener>();
  private watcher: Watcher | undefined;
  private closed = false;
  private connected = false;

  private constructor(private readonly cluster: Namespace) {}

  static async open(cluster: Namespace): Promise<ClusterView> {
    const view = new ClusterView(cluster);
    await view.load();
    return view;
  }

  /** The last map seen; undefined until the cluster has one. */
  get map(): ClusterMap | undefined {
    return this.currentMap;
  }

  /** The nodes that hold a lease, by id. */
  get liveNodes(): LiveNode[] {
    return [...this.nodes.values()].sort((a, b) => a.node.localeCompare(b.node));
  }

  /** Whether the watch is connected to etcd now (the cache may be behind while it is not). */
  get watching(): boolean {
    return this.connected;
  }

  /** Calls `listener` on every later change; returns the function that stops it. */
  subscribe(listener: ClusterListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    await this.watcher?.cancel();
  }

  /** One read of every key at one revision, then a watch from the revision after it. */
  private async load(): Promise<void> {
    const response = await this.cluster.getAll().prefix("").exec();
    this.nodes.clear();
    for (const kv of response.kvs) this.apply(kv, false);
    const watcher = this.cluster
      .watch()
      .prefix("")
      .startRevision(String(Number(response.header.revision) + 1))
      .watcher();
    watcher
      .on("connected", () => (this.connected = true))
      .on("disconnected", () => (this.connected = false))
      .on("put", (kv) => this.apply(kv, true))
      .on("delete", (kv) => this.remove(kv))
      .on("error", () => void this.reload(watcher));
    this.watcher = watcher;
  }

  private async reload(failed: Watcher): Promise<void> {
    this.connected = false;
    await failed.cancel().catch(() => undefined);
    while (!this.closed) {
      try {
        await this.load();
        if (this.closed) await this.watcher?.cancel();
        this.notify({ kind: "nodes", nodes: this.liveNodes });
        if (this.currentMap) this.notify({ kind: "map", map: this.currentMap });
        return;
      } catch {
        await sleep(RELOAD_RETRY_MS);
      }
    }
  }

  private apply(kv: IKeyValue, notify: boolean): void {
    const key = kv.key.toString();
    if (key === CLUSTER_KEYS.map) {
      let map: ClusterMap;
      try {
        map = decodeMap(kv.value.toString(), modRevision(kv));
      } catch (error) {
        if (!(error instanceof InvalidClusterMapError)) throw error;
        if (notify) this.notify({ kind: "invalid-map", error });
        return;
      }
      if (this.currentMap && map.version <= this.currentMap.version) return;
      this.currentMap = map;
      if (notify) this.notify({ kind: "map", map });
    } else if (key.startsWith(CLUSTER_KEYS.nodes)) {
      const node = decodeNode(kv);
      if (!node) return;
      this.nodes.set(node.node, node);
      if (notify) this.notify({ kind: "nodes", nodes: this.liveNodes });
    }
  }

  private remove(kv: IKeyValue): void {
    const key = kv.key.toString();
    if (!key.startsWith(CLUSTER_KEYS.nodes)) return;
    this.nodes.delete(key.slice(CLUSTER_KEYS.nodes.length));
    this.notify({ kind: "nodes", nodes: this.liveNodes });
  }

  private notify(change: ClusterChange): void {
    for (const listener of this.listeners) listener(change);
  }
}
