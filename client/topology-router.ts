import { SLOT_COUNT, slotOf } from "../schema/placement.js";
import type { components } from "./generated/openapi.js";

/**
 * Which node owns which slots, as `GET /v1/topology` answers: `{version, slots, shards: [{shard,
 * slots: {from, to}, node, url}]}`. A server that runs on its own answers version 0.
 *
 * @example
 * const map: Topology | undefined = db.topology();
 * for (const { shard, node, url } of map?.shards ?? []) console.log(shard, node, url ?? "(no lease)");
 */
export type Topology = components["schemas"]["Topology"];

/** The entity a request is about; its slot names the node that owns it. */
export interface EntityKey {
  type: string;
  id: string;
}

/** Where one attempt goes; `routed` when the map named that node as the key's owner. */
export interface Route {
  origin: string;
  routed: boolean;
}

/** After a load that failed or brought nothing newer, no other load starts for this long. */
const RELOAD_COOLDOWN_MS = 1_000;
/**
 * A node that did not answer is passed over for this long: the default lease TTL, after which
 * the map names another owner, or the node is back.
 */
const UNREACHABLE_MS = 10_000;

interface LoadedMap {
  topology: Topology;
  /** The owner's origin for each slot; `null` sends the slot's keys to the base node. */
  owners: (string | null)[];
}

/**
 * Picks the node each attempt of a request goes to, from the cluster's map: the owner of the
 * key's slot, or the base node (which forwards) for lists, while the map is unknown, for a
 * server on its own, and after the owner failed to answer. The map is loaded at the first
 * request for a key (one load shared by every caller) and reloaded in the background when an
 * answer shows it is stale; a load that fails leaves the requests on the base node, never fails
 * them.
 *
 * @example
 * const router = new TopologyRouter("http://127.0.0.1:8080/", true, () => fetchTopology());
 * const route = await router.route({ type: "account", id: "alice" }, undefined);
 */
export class TopologyRouter {
  private map: LoadedMap | undefined;
  private first: Promise<void> | undefined;
  private loading: Promise<void> | undefined;
  private notBefore = 0;
  private readonly unreachable = new Map<string, number>();
  private readonly base: Route;

  /**
   * @param baseOrigin the node the client was given, as `new URL(baseUrl).href`.
   * @param direct false: every request goes to the base node and no map is ever loaded.
   * @param load one `GET /v1/topology`; its body is checked here, so it may be anything.
   */
  constructor(
    baseOrigin: string,
    private readonly direct: boolean,
    private readonly load: () => Promise<unknown>,
  ) {
    this.base = { origin: baseOrigin, routed: false };
  }

  /** The map in use, or `undefined` before one was loaded. */
  topology(): Topology | undefined {
    return this.map?.topology;
  }

  /** Where the next attempt of a request goes; waits for the first load of the map, if it must. */
  async route(key: EntityKey | undefined, signal: AbortSignal | undefined): Promise<Route> {
    if (!this.direct || key === undefined) return this.base;
    if (this.map === undefined) {
      this.first ??= this.reload();
      await untilAborted(this.first, signal);
    }
    if (this.map === undefined) {
      void this.reload();
      return this.base;
    }
    if (this.map.topology.version === 0) return this.base;
    const origin = this.map.owners[slotOf(key.type, key.id)] ?? null;
    if (origin === null) return this.base;
    const passedOverUntil = this.unreachable.get(origin);
    if (passedOverUntil !== undefined) {
      if (passedOverUntil > Date.now()) return this.base;
      this.unreachable.delete(origin);
    }
    return { origin, routed: true };
  }

  /**
   * An attempt got an answer: a newer map version than ours, or a request routed to its owner
   * that the node forwarded (it is not the owner any more), means the map is stale.
   */
  answered(route: Route, headers: Headers): void {
    if (!this.direct) return;
    const version = mapVersionOf(headers.get("Apostate-Map-Version"));
    const newer = version !== undefined && version > (this.map?.topology.version ?? -1);
    const forwarded = route.routed && headers.has("Apostate-Served-By");
    if (newer || forwarded) void this.reload();
  }

  /** An attempt got no answer: its node is passed over for a while and the map reloaded. */
  unanswered(route: Route): void {
    if (!route.routed || route.origin === this.base.origin) return;
    this.unreachable.set(route.origin, Date.now() + UNREACHABLE_MS);
    void this.reload();
  }

  /** The load in flight, or a new one unless the last one was fruitless a moment ago. Never rejects. */
  private reload(): Promise<void> {
    if (this.loading) return this.loading;
    if (Date.now() < this.notBefore) return Promise.resolve();
    this.loading = this.fetchMap().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async fetchMap(): Promise<void> {
    const known = this.map?.topology.version;
    let advanced = false;
    try {
      const map = loadedMapOf(await this.load());
      // The base node's map may lag the one an owner answered with: never go back to it.
      advanced = map !== undefined && (known === undefined || map.topology.version > known);
      if (advanced) this.map = map;
    } catch {
      // Nothing to report: without a (newer) map, requests go where they went, and nodes forward.
    }
    this.notBefore = advanced ? 0 : Date.now() + RELOAD_COOLDOWN_MS;
  }
}

/** An `Apostate-Map-Version` header's value; `undefined` when absent or not a version. */
function mapVersionOf(value: string | null): number | undefined {
  return value !== null && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

/**
 * The topology in a `GET /v1/topology` body, checked, with each slot's owner looked up once;
 * `undefined` for anything else: a map that is wrong in any part routes nothing.
 */
function loadedMapOf(body: unknown): LoadedMap | undefined {
  if (!isRecord(body) || !Array.isArray(body.shards)) return undefined;
  const { version, slots } = body;
  if (!isCount(version) || slots !== SLOT_COUNT) return undefined;
  const owners = new Array<string | null>(SLOT_COUNT).fill(null);
  const claimed = new Uint8Array(SLOT_COUNT);
  const shards: Topology["shards"] = [];
  for (const shard of body.shards as unknown[]) {
    if (!isRecord(shard) || !isCount(shard.shard) || typeof shard.node !== "string" || !isRecord(shard.slots)) return undefined;
    const { from, to } = shard.slots;
    if (!isCount(from) || !isCount(to) || from > to || to >= SLOT_COUNT) return undefined;
    const { url } = shard;
    if (url !== null && typeof url !== "string") return undefined;
    const origin = url === null ? null : originOf(url);
    if (origin === undefined) return undefined;
    if (claimed.subarray(from, to + 1).includes(1)) return undefined;
    claimed.fill(1, from, to + 1);
    owners.fill(origin, from, to + 1);
    shards.push({ shard: shard.shard, slots: { from, to }, node: shard.node, url });
  }
  return { topology: { version, slots, shards }, owners };
}

/** A node's URL as openapi-fetch is given its base (`URL.href`); `undefined` unless http(s). */
function originOf(url: string): string | undefined {
  if (!URL.canParse(url)) return undefined;
  const parsed = new URL(url);
  return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** `promise`, unless `signal` aborts first: then the signal's reason. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
