import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { Etcd3, Namespace } from "etcd3";
import { clusterNamespace, connectEtcd } from "../../server/cluster/etcd-client.js";
import { afterAll, afterEach, beforeAll } from "vitest";
import { TestEtcd } from "./etcd.js";

/**
 * etcd clients for one test: each has the cluster's keys as a namespace; `closeAll()` (in an
 * `afterEach`) closes the ones the test left open.
 */
export class EtcdClients {
  private readonly open = new Set<Etcd3>();
  private count = 0;

  constructor(readonly etcd: TestEtcd) {}

  /**
   * One etcd for the test file, started before its first test and destroyed after its last, and
   * its clients, whose connections are closed after each test (after the file's own `afterEach`
   * hooks, which vitest runs first, so what they close still has its connection).
   */
  static forFile(): { readonly clients: EtcdClients; readonly etcd: TestEtcd } {
    let clients: EtcdClients | undefined;
    const started = () => {
      if (!clients) throw new Error("etcd starts in beforeAll: use it inside a test or hook");
      return clients;
    };
    beforeAll(async () => {
      clients = new EtcdClients(await TestEtcd.start());
    });
    afterEach(() => clients?.closeAll());
    afterAll(() => clients?.etcd.destroy());
    return {
      get clients() {
        return started();
      },
      get etcd() {
        return started().etcd;
      },
    };
  }

  /** A cluster name no other test in the file uses. */
  newCluster(): string {
    return `c${++this.count}`;
  }

  connect(cluster: string): { client: Etcd3; cluster: Namespace } {
    const client = connectEtcd([this.etcd.url]);
    this.open.add(client);
    return { client, cluster: clusterNamespace(client, cluster) };
  }

  closeAll(): void {
    for (const client of this.open) client.close();
    this.open.clear();
  }
}

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(50);
  }
}

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** What a holder process does: register a node, or campaign for coordinator. */
type HolderRole = { register: { node: string; url: string } } | { campaign: string };

// Run in the child: it prints one line when it holds its lease (and, campaigning, when elected).
const HOLDER_SCRIPT = `
const { clusterNamespace, connectEtcd } = await import("./server/cluster/etcd-client.ts");
const { NodeRegistration } = await import("./server/cluster/node-registration.ts");
const { CoordinatorCandidate } = await import("./server/cluster/coordinator-election.ts");
const { url, cluster, role, ttl } = JSON.parse(process.env.HOLDER);
const namespace = clusterNamespace(connectEtcd([url]), cluster);
if (role.register) {
  await NodeRegistration.start(namespace, role.register, ttl);
  console.log("registered");
} else {
  CoordinatorCandidate.start(namespace, role.campaign, ttl, {
    elected: () => console.log("elected"),
    deposed: () => console.log("deposed"),
  });
  console.log("campaigning");
}
`;

/**
 * A node in a process of its own, so a test can kill it outright: closing an etcd client in
 * this process would not do, since gRPC keeps a lease's open keep-alive stream going.
 */
export class EtcdHolder {
  readonly lines: string[] = [];
  private readonly exited: Promise<unknown>;

  private constructor(private readonly child: ChildProcess) {
    this.exited = once(child, "exit");
    child.stdout?.on("data", (chunk: Buffer) => this.lines.push(...chunk.toString().split("\n").filter(Boolean)));
    child.stderr?.on("data", (chunk: Buffer) => this.lines.push(chunk.toString()));
  }

  static async start(etcd: TestEtcd, cluster: string, role: HolderRole, ttl: number): Promise<EtcdHolder> {
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", HOLDER_SCRIPT], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, HOLDER: JSON.stringify({ url: etcd.url, cluster, role, ttl }) },
    });
    const holder = new EtcdHolder(child);
    const ready = "register" in role ? "registered" : "campaigning";
    await eventually(`the holder says ${ready}: ${holder.lines.join("\n")}`, () => holder.lines.includes(ready), 30_000);
    return holder;
  }

  /** SIGKILL: the process dies holding its lease, which etcd ends after the TTL. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    await this.exited;
  }
}
