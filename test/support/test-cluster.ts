import { Etcd3 } from "etcd3";
import { expect } from "vitest";
import type { IncrementLoad } from "./increment-load.js";
import { ServerProcess } from "./server-process.js";
import { eventually } from "./cluster-etcd.js";
import { freePort } from "../../server/cli/loopback-ports.js";
import { TestEtcd } from "./etcd.js";
import { LinkCut } from "./link-cut.js";
import { tempDir } from "./temp-dir.js";

export interface TestNode {
  id: string;
  url: string;
  port: number;
  dataDir: string;
  /** The running server; undefined while the node is down. */
  server: ServerProcess | undefined;
  /** The link its peers reach it through, when the test cuts it (`links`); they reach `url` otherwise. */
  link: LinkCut | undefined;
  /** What the node's earlier processes (crashed, stopped) wrote, for {@link TestCluster.logs}. */
  earlierOutput: string[];
}

/**
 * How much of each node's log {@link TestCluster.logs} shows: the end, where a failure's story
 * is, of its own events, and of its lines about single requests (under load those are mostly
 * the same refusal, and would push the events out).
 */
const LOG_TAIL_LINES = { events: 300, requests: 40 };

export interface TestClusterOptions {
  nodes: number;
  /** Shards the first node founds the cluster with. */
  shards?: number;
  workers?: number;
  /** `--lease-ttl`; short in tests so a dead node's key goes soon. */
  leaseTtl?: string;
  /** Honour the test hooks (a move held at a state through etcd). */
  testHooks?: boolean;
  /** More flags for every node. */
  args?: string[];
  /** More environment for every node's processes. */
  env?: NodeJS.ProcessEnv;
  adminToken?: string;
  token?: string;
  /** Nodes whose peers (other nodes, the coordinator) reach them through a LinkCut the test can cut. */
  links?: string[];
}

type MoveState = "copying" | "catching-up" | "frozen" | "switched" | "done" | "aborted";

export interface MoveAnswer {
  id: string;
  shard: number;
  state: MoveState;
  detail: string | null;
}

export interface ClusterAnswer {
  mapVersion: number;
  coordinator: string | null;
  nodes: { node: string; alive: boolean; shards: number[] }[];
  shards: {
    shard: number;
    slots: { from: number; to: number };
    node: string;
    followers: string[];
    epoch: number;
    state: string;
    replication: { node: string; sequence: number | null; lag: number | null; synced: boolean | null }[];
  }[];
  moves: MoveAnswer[];
}

const CLUSTER = "test";

/**
 * A real cluster for tests: one etcd (started here, stopped by its pid) and `nodes` real
 * `apostate serve --etcd` processes, each with its own data directory and a fixed port (so a
 * restarted node keeps its advertised URL). The first node founds the cluster; the others join
 * empty. Nodes can be crashed (`kill -9`), paused (SIGSTOP), stopped and restarted.
 *
 * @example
 * const cluster = await TestCluster.start({ nodes: 3 });
 * afterAll(() => cluster.destroy());
 * await cluster.admin("n1", "POST", "/admin/cluster/rebalance");
 */
export class TestCluster {
  readonly nodes = new Map<string, TestNode>();
  private readonly dirs: { remove: () => void }[] = [];

  private constructor(
    readonly etcd: TestEtcd,
    private readonly options: TestClusterOptions,
  ) {}

  static async start(options: TestClusterOptions): Promise<TestCluster> {
    const cluster = new TestCluster(await TestEtcd.start(), options);
    try {
      for (let i = 1; i <= options.nodes; i++) {
        await cluster.addNode(`n${i}`);
      }
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  /** Node ids in order. */
  get ids(): string[] {
    return [...this.nodes.keys()];
  }

  node(id: string): TestNode {
    const node = this.nodes.get(id);
    if (!node) throw new Error(`no node ${id}`);
    return node;
  }

  /** A new node with an empty data directory: it founds the cluster if it is the first, else joins. */
  async addNode(id: string): Promise<TestNode> {
    const dir = tempDir(`apostate-${id}-`);
    this.dirs.push(dir);
    const port = await freePort();
    const link = this.options.links?.includes(id) ? await LinkCut.start(port) : undefined;
    const node: TestNode = {
      id,
      port,
      url: `http://127.0.0.1:${port}`,
      dataDir: dir.path,
      server: undefined,
      link,
      earlierOutput: [],
    };
    this.nodes.set(id, node);
    await this.startNode(id);
    return node;
  }

  async startNode(id: string, env: NodeJS.ProcessEnv = {}): Promise<void> {
    const node = this.node(id);
    if (node.server) throw new Error(`node ${id} is running`);
    const { options } = this;
    node.server = await ServerProcess.start({
      dataDir: node.dataDir,
      workers: options.workers ?? 1,
      args: [
        ...[
          "--port",
          String(node.port),
          "--etcd",
          this.etcd.url,
          "--cluster",
          CLUSTER,
          "--node",
          id,
          "--advertise",
          node.link?.url ?? node.url,
        ],
        ...["--lease-ttl", options.leaseTtl ?? "3s", "--shards", String(options.shards ?? 4)],
        ...(options.adminToken ? ["--admin-token", options.adminToken] : []),
        ...(options.token ? ["--token", options.token] : []),
        ...(options.args ?? []),
      ],
      env: { ...(options.testHooks && { APOSTATE_TEST_HOOKS: "1" }), ...options.env, ...env },
    });
  }

  /** `kill -9` of the node's every process. */
  async crash(id: string): Promise<void> {
    const node = this.node(id);
    await node.server?.crash();
    this.ended(node, "killed");
  }

  /** Waits for a node that stops by itself; resolves to its exit code. */
  async exited(id: string): Promise<number | null> {
    const node = this.node(id);
    const code = (await node.server?.exitCode) ?? null;
    this.ended(node, `exited with ${code}`);
    return code;
  }

  async stop(id: string): Promise<void> {
    const node = this.node(id);
    await node.server?.stop();
    this.ended(node, "stopped");
  }

  /**
   * The end of every node's log, its earlier processes' included, each line under the node's id:
   * what a failed history check prints, so that a failure seen once in CI can be explained.
   */
  logs(): string {
    return [...this.nodes.values()]
      .flatMap((node) => {
        const lines = [...node.earlierOutput, ...(node.server?.output ?? [])];
        const aboutRequest = (line: string) => line.includes('"reqId":');
        const events = lines.filter((line) => !aboutRequest(line)).slice(-LOG_TAIL_LINES.events);
        const requests = lines.filter(aboutRequest).slice(-LOG_TAIL_LINES.requests);
        return [...events, ...requests].map((line) => `${node.id} ${line}`);
      })
      .join("\n");
  }

  /**
   * Reads the load's counters back through node `via` and expects its history to hold: every
   * acknowledged increment there exactly once. A failure, or counters that cannot be read,
   * carries the end of every node's log.
   */
  async expectHistoryHolds(load: IncrementLoad, via: string): Promise<void> {
    const verdict = await load.verify(this.node(via).url).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\n${this.logs()}`, { cause: error });
    });
    expect(verdict.problems, this.logs()).toEqual([]);
    expect(verdict).toMatchObject({ lost: 0, doubled: 0 });
  }

  private ended(node: TestNode, how: string): void {
    node.earlierOutput.push(...(node.server?.output ?? []), `(process ${how})`);
    node.server = undefined;
  }

  pause(id: string): void {
    this.node(id).server?.kill("SIGSTOP");
  }

  resume(id: string): void {
    this.node(id).server?.kill("SIGCONT");
  }

  /** An admin request to a node; resolves to its status and parsed body. */
  async admin<T = unknown>(id: string, method: string, path: string, body?: object): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = {};
    if (this.options.adminToken) headers.authorization = `Bearer ${this.options.adminToken}`;
    if (body) headers["content-type"] = "application/json";
    const answer = await fetch(new URL(path, this.node(id).url), {
      method,
      headers,
      ...(body && { body: JSON.stringify(body) }),
    });
    const text = await answer.text();
    return { status: answer.status, body: (text ? JSON.parse(text) : undefined) as T };
  }

  async status(id: string): Promise<ClusterAnswer> {
    const { status, body } = await this.admin<ClusterAnswer>(id, "GET", "/admin/cluster");
    if (status !== 200) throw new Error(`GET /admin/cluster on ${id} answered ${status}: ${JSON.stringify(body)}`);
    return body;
  }

  /** Waits until the move reaches `state` (or any finished state when `state` is "finished"), as node `via` sees it. */
  async waitForMove(via: string, id: string, state: MoveState, timeoutMs = 60_000): Promise<MoveAnswer> {
    let last: MoveAnswer | undefined;
    await eventually(
      `move ${id} to reach ${state} (last seen ${last?.state ?? "nothing"})`,
      async () => {
        const { status, body } = await this.admin<MoveAnswer>(via, "GET", `/admin/cluster/moves/${id}`).catch(() => ({
          status: 0,
          body: undefined,
        }));
        if (status === 200 && body) last = body;
        return last?.state === state || (last?.state === "aborted" && state !== "aborted");
      },
      timeoutMs,
    );
    if (last?.state !== state) throw new Error(`move ${id} ended ${last?.state}: ${last?.detail}`);
    return last;
  }

  /** Asks node `via` for a rebalance and waits until every move it planned is done; resolves to how many there were. */
  async rebalance(via: string): Promise<number> {
    const { status, body } = await this.admin<{ moves: { id: string }[] }>(via, "POST", "/admin/cluster/rebalance");
    if (status !== 202) throw new Error(`POST /admin/cluster/rebalance on ${via} answered ${status}: ${JSON.stringify(body)}`);
    for (const move of body.moves) await this.waitForMove(via, move.id, "done");
    return body.moves.length;
  }

  /** Holds every move at `state` (nodes started with `testHooks`), or lets them go on (undefined). */
  async pauseMovesAt(state: MoveState | undefined): Promise<void> {
    await this.setTestKey("test/pause-moves", state);
  }

  /** Makes a node (started with `testHooks`) ignore map changes, as if its watch were late; `false` lets it catch up. */
  async holdMap(id: string, held: boolean): Promise<void> {
    await this.setTestKey(`test/hold-map/${id}`, held ? "held" : undefined);
  }

  private async setTestKey(key: string, value: string | undefined): Promise<void> {
    const client = new Etcd3({ hosts: this.etcd.url });
    try {
      const path = `/apostate/${CLUSTER}/${key}`;
      if (value !== undefined) await client.put(path).value(value);
      else await client.delete().key(path);
    } finally {
      client.close();
    }
  }

  /** Every running node's URL. */
  urls(): string[] {
    return [...this.nodes.values()].filter((node) => node.server).map((node) => node.url);
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((node) => node.server?.crash()));
    await Promise.all([...this.nodes.values()].map((node) => node.link?.close()));
    await this.etcd.destroy();
    for (const dir of this.dirs) dir.remove();
  }
}
