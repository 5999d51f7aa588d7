import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { components } from "../client/generated/openapi.js";
import { freePort } from "../server/cli/loopback-ports.js";
import { TestEtcd } from "../test/support/etcd.js";
import { BenchServer } from "./bench-server.js";

type Schemas = components["schemas"];
export type Topology = Schemas["Topology"];
export type ClusterStatus = Schemas["ClusterStatus"];
export type MoveAnswer = Schemas["Move"];

export interface BenchNode {
  id: string;
  url: string;
  server: BenchServer;
}

const CLUSTER = "bench";
const READY_TIMEOUT_MS = 60_000;

/**
 * A cluster for the bench: a real etcd from `PATH` (on free loopback ports, in a temporary
 * directory, stopped by its pid) and `nodes` compiled `apostate serve --etcd` nodes of one
 * worker each. The first node founds the cluster on `firstDataDir` (a preloaded single-node
 * directory becomes its shards); the others join with empty directories under `root`.
 *
 * @example
 * const cluster = await BenchCluster.start(root, { nodes: 3, firstDataDir });
 * const topology = await cluster.topology(cluster.node("n1").url);
 */
export class BenchCluster {
  private constructor(
    private readonly etcd: TestEtcd,
    readonly nodes: BenchNode[],
  ) {}

  static async start(
    root: string,
    options: {
      nodes: number;
      firstDataDir: string;
      profileDir?: (node: string) => string | undefined;
      /** More flags for every node (`--replicas 2`). */
      args?: string[];
    },
  ): Promise<BenchCluster> {
    const cluster = new BenchCluster(await TestEtcd.start(), []);
    try {
      for (let i = 1; i <= options.nodes; i += 1) {
        const id = `n${i}`;
        const dataDir = i === 1 ? options.firstDataDir : join(root, `data-${id}`);
        mkdirSync(dataDir, { recursive: true });
        const port = await freePort();
        const url = `http://127.0.0.1:${port}`;
        const args = [
          ...["--etcd", cluster.etcd.url, "--cluster", CLUSTER, "--node", id, "--advertise", url],
          ...(options.args ?? []),
        ];
        const server = await BenchServer.apostate(join(root, `${id}.log`), dataDir, {
          workers: 1,
          port,
          args,
          profileDir: options.profileDir?.(id),
        });
        cluster.nodes.push({ id, url, server });
      }
      await cluster.waitUntil("every node holds its lease", async () => {
        const status = await cluster.call<ClusterStatus>(cluster.node("n1").url, "GET", "/admin/cluster");
        return status.nodes.filter((node) => node.alive).length === options.nodes && status.coordinator !== null;
      });
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  node(id: string): BenchNode {
    const node = this.nodes.find((candidate) => candidate.id === id);
    if (!node) throw new Error(`no node ${id}`);
    return node;
  }

  topology(via: string): Promise<Topology> {
    return this.call<Topology>(via, "GET", "/v1/topology");
  }

  /** A request that must answer 200 or 202; resolves to the parsed body. */
  async call<T>(via: string, method: string, path: string, body?: object): Promise<T> {
    const answer = await fetch(new URL(path, via), {
      method,
      ...(body && { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
    });
    const text = await answer.text();
    if (answer.status !== 200 && answer.status !== 202) throw new Error(`${method} ${path} answered ${answer.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  /** Polls `check` every 50 ms until it holds. */
  async waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!(await check().catch(() => false))) {
      if (performance.now() > deadline) throw new Error(`timed out waiting until ${what}`);
      await sleep(50);
    }
  }

  /** The last lines of every node's log, for a report of what went wrong. */
  get logs(): string {
    return this.nodes.map(({ id, server }) => `--- ${id}\n${server.log}`).join("\n");
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map(({ server }) => server.stop()));
    await this.etcd.destroy();
  }
}
