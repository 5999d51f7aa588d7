import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../support/cluster-etcd.js";
import { runCli } from "../support/run-cli.js";
import { tempDir } from "../support/temp-dir.js";

/*
 * `apostate cluster up --nodes 3` as a user runs it: a child of this test that starts etcd and
 * three real nodes, rebalances and prints the URLs; the README's walk-through, run by bash as it
 * is written; Ctrl-C; a second run on the same data directory; a node killed under it.
 */

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);
const UP_WITHIN_MS = 240_000;

interface Topology {
  version: number;
  shards: { shard: number; node: string; url: string | null }[];
}

/** `apostate cluster up` in a child process: its output as it comes, and how it exits. */
class ClusterUp {
  output = "";
  readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    child.stdout?.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  }

  static start(args: string[]): ClusterUp {
    return new ClusterUp(
      spawn(process.execPath, ["--import", "tsx", "server/main.ts", "cluster", "up", ...args], {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
  }

  /** Waits until the output says the cluster is up; fails with the output if it exits first. */
  async waitUntilUp(): Promise<void> {
    let exited = false;
    void this.exited.then(() => (exited = true));
    await eventually(
      `cluster up to be up:\n${this.output}`,
      () => {
        if (exited) throw new Error(`cluster up exited:\n${this.output}`);
        return /^cluster demo is up/m.test(this.output);
      },
      UP_WITHIN_MS,
    );
  }

  /** The pid of each child, as printed: `etcd: <url> (pid N)`, `n1: starting on <url> (pid N, …)`. */
  pids(): Map<string, number> {
    const found = [...this.output.matchAll(/^(etcd|n\d+): [^\n]*\(pid (\d+)/gm)];
    return new Map(found.map((match) => [match[1] as string, Number(match[2])]));
  }

  /** The node URLs of the summary, by node id. */
  urls(): Map<string, string> {
    return new Map(
      [...this.output.matchAll(/^ {2}(n\d+) {2}(http:\/\/\S+)$/gm)].map((match) => [match[1] as string, match[2] as string]),
    );
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function portFree(port: number): Promise<boolean> {
  const server = createServer();
  const free = await new Promise<boolean>((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => resolve(true));
  });
  if (free) await new Promise((resolve) => server.close(resolve));
  return free;
}

/** Three free consecutive ports below the range the system hands out for outgoing connections. */
async function threeFreePorts(): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 10_000);
    if ((await portFree(base)) && (await portFree(base + 1)) && (await portFree(base + 2))) return base;
  }
}

/** The README's cluster walk-through, its ports moved to this test's. */
function walkthrough(base: number): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const block = /<!-- cluster-walkthrough:start -->\s*```sh\n([\s\S]*?)```\s*<!-- cluster-walkthrough:end -->/.exec(readme)?.[1];
  if (!block) throw new Error("README.md has no cluster-walkthrough block");
  return block.replace(/127\.0\.0\.1:808([0-2])/g, (_, index: string) => `127.0.0.1:${base + Number(index)}`);
}

async function topology(url: string): Promise<Topology> {
  const answer = await fetch(`${url}/v1/topology`);
  expect(answer.status).toBe(200);
  return (await answer.json()) as Topology;
}

const nodeOf = (map: Topology, shard: number) => map.shards.find((entry) => entry.shard === shard)?.node;

let dir: { path: string; remove: () => void };
let base: number;
let dataDir: string;
const started: ClusterUp[] = [];

beforeAll(async () => {
  dir = tempDir("apostate-cluster-up-");
  dataDir = join(dir.path, "cluster-data");
  base = await threeFreePorts();
});

afterAll(() => {
  // Whatever a failed test left running goes, every process group it printed included.
  for (const up of started) {
    up.child.kill("SIGKILL");
    for (const pid of up.pids().values()) if (groupAlive(pid)) process.kill(-pid, "SIGKILL");
  }
  dir?.remove();
});

function startUp(): ClusterUp {
  const up = ClusterUp.start(["--nodes", "3", "--data-dir", dataDir, "--port", String(base)]);
  started.push(up);
  return up;
}

describe("apostate cluster up --nodes 3", () => {
  let up: ClusterUp;

  it(
    "starts etcd and three nodes, rebalances them, and prints the URLs and what to try",
    async () => {
      up = startUp();
      await up.waitUntilUp();
      const urls = [0, 1, 2].map((index) => `http://127.0.0.1:${base + index}`);
      expect([...up.urls()]).toEqual([
        ["n1", urls[0]],
        ["n2", urls[1]],
        ["n3", urls[2]],
      ]);
      expect([...up.pids().keys()]).toEqual(["etcd", "n1", "n2", "n3"]);
      expect(up.output).toMatch(/^rebalance: 5 of 5 move\(s\) done$/m);
      expect(up.output).toContain(`  curl ${urls[0]}/v1/topology`);
      for (const id of ["etcd", "n1", "n2", "n3"]) expect(existsSync(join(dataDir, `${id}.log`))).toBe(true);

      // Eight shards over three nodes: n1 keeps the lowest three, n2 takes three and n3 two.
      const map = await topology(urls[1] as string);
      const owned = (node: string) => map.shards.filter((shard) => shard.node === node).map((shard) => shard.shard);
      expect([owned("n1"), owned("n2"), owned("n3")]).toEqual([
        [0, 1, 2],
        [5, 6, 7],
        [3, 4],
      ]);
      expect(map.shards.every((shard) => shard.url === urls[Number(shard.node.slice(1)) - 1])).toBe(true);
    },
    UP_WITHIN_MS + 30_000,
  );

  it("answers the README's walk-through, run as it is written", async () => {
    const { stdout } = await run("bash", ["-e", "-o", "pipefail", "-c", walkthrough(base)], { cwd: ROOT, timeout: 120_000 });
    // The PUT through n2 was served by n1; the move reached done; then n1 forwarded the read to n3.
    expect(stdout).toMatch(/HTTP\/1\.1 201 Created[\s\S]*?apostate-served-by: n1\r?\n/i);
    expect(stdout).toMatch(/"kind":"move","shard":0,"newShard":null,"from":"n1","to":"n3","state":"done"/);
    expect(stdout).toMatch(/HTTP\/1\.1 200 OK[\s\S]*?apostate-served-by: n3\r?\n[\s\S]*"version":1,"data":\{"balance":100\}/i);

    // The same facts, asked again with fetch.
    expect(nodeOf(await topology(`http://127.0.0.1:${base}`), 0)).toBe("n3");
    const read = await fetch(`http://127.0.0.1:${base + 1}/v1/entities/account/alice`);
    expect(read.status).toBe(200);
    expect(read.headers.get("apostate-served-by")).toBe("n3");
    expect(await read.json()).toMatchObject({ version: 1, data: { balance: 100 } });
  }, 150_000);

  it("stops the nodes and etcd on SIGINT and exits 0, leaving no process and no port behind", async () => {
    const pids = up.pids();
    up.child.kill("SIGINT");
    expect(await up.exited).toBe(0);
    expect(up.output.trimEnd().split("\n").slice(-3)).toEqual(["SIGINT: stopping", "stopping n1, n2, n3, etcd", "stopped"]);
    await eventually(
      "every process group of the demo to be gone",
      () => [...pids.values()].every((pid) => !groupAlive(pid)),
      5_000,
    );
    for (const port of [base, base + 1, base + 2]) expect(await portFree(port)).toBe(true);
  }, 60_000);

  it(
    "resumes the same cluster on the same --data-dir, and stops everything with exit 1 when a node dies",
    async () => {
      const again = startUp();
      await again.waitUntilUp();
      expect(again.output).toContain("rebalance: every node has its share already");
      expect(nodeOf(await topology(`http://127.0.0.1:${base + 2}`), 0)).toBe("n3");
      const read = await fetch(`http://127.0.0.1:${base}/v1/entities/account/alice`);
      expect(read.status).toBe(200);
      expect(await read.json()).toMatchObject({ version: 1, data: { balance: 100 } });

      const pids = again.pids();
      process.kill(-(pids.get("n2") as number), "SIGKILL");
      expect(await again.exited).toBe(1);
      expect(again.output).toContain("n2 stopped by itself (killed by SIGKILL)");
      expect(again.output).toContain("stopping n1, n3, etcd");
      await eventually(
        "every process group of the demo to be gone",
        () => [...pids.values()].every((pid) => !groupAlive(pid)),
        5_000,
      );
    },
    UP_WITHIN_MS + 60_000,
  );
});

describe("apostate cluster up refuses to start", () => {
  it("without etcd on PATH: exit 2, the package to install, nothing created", async () => {
    const empty = tempDir("apostate-no-etcd-");
    try {
      const target = join(empty.path, "cluster-data");
      const refused = await runCli(["cluster", "up", "--data-dir", target], { PATH: empty.path });
      expect(refused.stderr).toBe("error: etcd not found on PATH: install it with `apt-get install etcd-server`\n");
      expect(refused.code).toBe(2);
      expect(existsSync(target)).toBe(false);
    } finally {
      empty.remove();
    }
  });

  it("when a node's port is taken: exit 2, naming the port", async () => {
    const taken = createServer().listen(base + 1, "127.0.0.1");
    await once(taken, "listening");
    try {
      const target = join(dir.path, "taken");
      const refused = await runCli(["cluster", "up", "--nodes", "2", "--port", String(base), "--data-dir", target]);
      expect(refused.stderr).toBe(`error: port ${base + 1} of 127.0.0.1 is taken: choose another --port\n`);
      expect(refused.code).toBe(2);
      expect(existsSync(target)).toBe(false);
    } finally {
      taken.close();
    }
  });
});
