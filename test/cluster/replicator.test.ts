import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { ClusterState } from "../../server/cluster/cluster-state.js";
import { Replicator } from "../../server/cluster/replicator.js";
import type { ReplicaAcksWire, ReplicaBatchWire } from "../../server/cluster/shard-transfer.js";
import type { ShardAssignment } from "../../server/cluster/topology.js";
import type { ReplicaBatch } from "../../server/storage/shard.js";
import { ShardFrozenError } from "../../server/storage/storage-errors.js";
import { contractViolations, type Exchange } from "../support/contract.js";

/*
 * The owner's side of replication against a follower played by the test: what it sends, when,
 * and what it makes of the answers. Every exchange is held against openapi.yaml both ways.
 */

const EPOCH = 5;

/** A follower node that records each request and answers each batch as applied, unless told otherwise. */
class FakeFollower {
  readonly requests: ReplicaBatchWire[][] = [];
  /**
   * Each exchange, to be held against openapi.yaml once the test has sent everything: the
   * checker's first use compiles the document for seconds, which would stall the replicator's
   * requests (and their timeouts) if it ran between them.
   */
  private readonly exchanges: Exchange[] = [];
  /** While set, requests wait for it before they are answered. */
  private hold: Promise<void> | undefined;
  private arrivals: (() => void)[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
    /** The follower's epoch for each shard, when above the batch's (it was promoted). */
    readonly epochs: Map<number, number>,
  ) {}

  static async start(): Promise<FakeFollower> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const follower = new FakeFollower(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, new Map());
    server.on("request", (req: IncomingMessage, res: ServerResponse) => void follower.answer(req, res));
    return follower;
  }

  /** Holds every request from now until the returned function is called. */
  holdRequests(): () => void {
    let release = () => {};
    this.hold = new Promise<void>((resolve) => (release = resolve));
    return () => {
      this.hold = undefined;
      release();
    };
  }

  /** Resolves once `count` requests have arrived in all. */
  received(count: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const check = () => (this.requests.length >= count ? resolve() : this.arrivals.push(check));
      check();
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const requestBody = Buffer.concat(chunks).toString("utf8");
    const { batches } = JSON.parse(requestBody) as { batches: ReplicaBatchWire[] };
    this.requests.push(batches);
    for (const arrived of this.arrivals.splice(0)) arrived();
    await this.hold;
    const answer: ReplicaAcksWire = {
      acks: batches.map(({ shard, epoch, changes }) => {
        const held = this.epochs.get(shard) ?? epoch;
        return { shard, applied: held <= epoch, sequence: changes.upTo, epoch: Math.max(held, epoch), synced: true };
      }),
    };
    const responseBody = JSON.stringify(answer);
    const responseHeaders = { "content-type": "application/json; charset=utf-8" };
    res.writeHead(200, responseHeaders).end(responseBody);
    const { method = "POST", url = "/" } = req;
    const exchange = { method, url, requestHeaders: req.headers, requestBody, status: 200, responseHeaders, responseBody };
    this.exchanges.push(exchange);
  }

  /** What the exchanges so far disagree with openapi.yaml on. */
  async violations(): Promise<string[]> {
    const found: string[] = [];
    for (const exchange of this.exchanges) found.push(...(await contractViolations(exchange)));
    return found;
  }
}

let follower: FakeFollower | undefined;
afterEach(async () => {
  await follower?.close();
  follower = undefined;
});

/** A replicator of node n1, owner of shards 0-2 at {@link EPOCH}, each followed by n2 (the fake). */
async function replicatorFor(fake: FakeFollower, followersOf: (shard: number) => string[] = () => ["n2"]) {
  const shards: ShardAssignment[] = [0, 1, 2].map((shard) => ({
    shard,
    slots: { from: shard * 1000, to: shard === 2 ? 4095 : shard * 1000 + 999 },
    node: "n1",
    followers: followersOf(shard),
    epoch: EPOCH,
    state: "active",
  }));
  const nodes = [
    { node: "n1", url: "http://127.0.0.1:1" },
    { node: "n2", url: fake.url },
  ];
  const state = new ClusterState({
    cluster: "test",
    self: nodes[0]!,
    map: { version: 9, shards },
    nodes,
    leaseHeld: true,
    cursorSecret: "00",
  });
  const failed: number[] = [];
  const replicator = await Replicator.create({
    state: () => state,
    changesAfter: () => {
      throw new Error("no gap was expected");
    },
    dropFollower: () => Promise.reject(new Error("no drop was expected")),
    adminToken: undefined,
    busyTimeoutMs: 5_000,
    logger: pino({ level: "silent" }),
    metrics: { shipped: () => {}, failed: (shard) => failed.push(shard), lag: () => {} },
  });
  return { replicator, failed };
}

/** Shard `shard`'s commit of sequence `after + 1`: one entity row. */
function batch(shard: number, after: number, followers = ["n2"]): ReplicaBatch {
  const at = "2026-12-03T00:00:00.000Z";
  const row = {
    type: "item",
    id: `s${shard}-${after + 1}`,
    slot: shard * 1000,
    version: 1,
    data: "{}",
    created_at: at,
    updated_at: at,
    sequence: after + 1,
  };
  return { shard, epoch: EPOCH, followers, changes: { after, upTo: after + 1, entities: [row], idempotency: [], frozen: false } };
}

/** Which shards each request carried, and the range of each. */
const carried = (requests: ReplicaBatchWire[][]) =>
  requests.map((batches) => batches.map(({ shard, changes }) => `${shard}:${changes.after}-${changes.upTo}`).sort());

describe("the replicator", () => {
  it("ships what waits for a follower's request in flight together, in the next one, and acknowledges each write only once it is applied", async () => {
    follower = await FakeFollower.start();
    const { replicator } = await replicatorFor(follower);
    const release = follower.holdRequests();
    const settled = new Set<string>();
    const ship = (shipped: ReplicaBatch) => {
      const name = `${shipped.shard}:${shipped.changes.after}`;
      return replicator.ship(shipped).then(() => settled.add(name));
    };
    const first = ship(batch(0, 0));
    await follower.received(1);
    // Shard 0's next commit waits in its lane behind the first; shards 1 and 2 wait for the request in flight.
    const rest = [ship(batch(1, 0)), ship(batch(2, 0)), ship(batch(0, 1))];
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(follower.requests).toHaveLength(1);
    expect(settled.size).toBe(0);
    release();
    await Promise.all([first, ...rest]);
    expect(carried(follower.requests)).toEqual([["0:0-1"], ["0:1-2", "1:0-1", "2:0-1"]]);
    expect(await follower.violations()).toEqual([]);
  });

  it("merges a shard's commits that waited behind its shipment into one batch", async () => {
    follower = await FakeFollower.start();
    const { replicator } = await replicatorFor(follower);
    const release = follower.holdRequests();
    const first = replicator.ship(batch(0, 0));
    await follower.received(1);
    const waiting = [1, 2, 3].map((after) => replicator.ship(batch(0, after)));
    release();
    await Promise.all([first, ...waiting]);
    expect(carried(follower.requests)).toEqual([["0:0-1"], ["0:1-4"]]);
    expect(follower.requests[1]?.[0]?.changes.entities.map(({ id }) => id)).toEqual(["s0-2", "s0-3", "s0-4"]);
    expect(await follower.violations()).toEqual([]);
  });

  it("fails a batch whose follower holds a newer epoch (another node owns the shard now), and only that shard's", async () => {
    follower = await FakeFollower.start();
    follower.epochs.set(1, EPOCH + 1);
    const { replicator, failed } = await replicatorFor(follower);
    const release = follower.holdRequests();
    const first = replicator.ship(batch(0, 0));
    await follower.received(1);
    const [fenced, other] = [replicator.ship(batch(1, 0)), replicator.ship(batch(2, 0))];
    release();
    await expect(fenced).rejects.toThrow(ShardFrozenError);
    await expect(fenced).rejects.toThrow(/holds epoch 6, above this node's 5/);
    await Promise.all([first, other]);
    expect(failed).toEqual([1]);
    expect(await follower.violations()).toEqual([]);
  });

  it("sends nothing to a follower the map no longer names, and refuses a batch for a shard this node no longer owns at its epoch", async () => {
    follower = await FakeFollower.start();
    const { replicator } = await replicatorFor(follower, (shard) => (shard === 0 ? [] : ["n2"]));
    await replicator.ship(batch(0, 0));
    await expect(replicator.ship({ ...batch(1, 0), epoch: EPOCH - 1 })).rejects.toThrow(/no longer this node's at epoch 4/);
    expect(follower.requests).toEqual([]);
  });
});
