import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isFinished, moveLine, type Move } from "./cluster-output.js";
import { EXIT_CODES, type ExitCode } from "./exit-codes.js";
import { findOnPath, startEtcd, type LocalEtcd } from "./local-etcd.js";
import { envWithout, LocalProcess, type ProcessEnd } from "./local-process.js";
import { isPortFree } from "./loopback-ports.js";
import { waitForMoves } from "./move-watch.js";
import { OperatorError } from "./operator-admin.js";
import { remote, type Remote } from "./remote-request.js";

/** What `apostate cluster up` is told. */
export interface ClusterUpOptions {
  nodes: number;
  dataDir: string;
  /** The first node's port; node i listens on `port + i - 1`. */
  port: number;
  /** The shards a new cluster is founded with. */
  shards: number;
  /** Worker processes per node. */
  workers: number;
}

const ETCD_MISSING = "etcd not found on PATH: install it with `apt-get install etcd-server`";

const CLUSTER = "demo";
/** A node bounds its own shutdown at 15 s. */
const NODE_STOP_GRACE_MS = 20_000;
const ETCD_STOP_GRACE_MS = 10_000;
/** Generous: a node started from the TypeScript sources on a busy machine takes seconds. */
const READY_WITHIN_MS = 120_000;
const POLL_MS = 200;
const NO_TOKEN = "nothing: the demo's nodes take no tokens";

interface DemoNode {
  id: string;
  url: string;
  dataDir: string;
}

/** How this program was started (node, its flags such as tsx's loader, the script), to start `serve` the same way. */
function selfCommand(): { command: string; args: string[] } {
  return { command: process.execPath, args: [...process.execArgv, process.argv[1] as string] };
}

function describeEnd({ code, signal }: ProcessEnd): string {
  if (signal) return `killed by ${signal}`;
  return code === null ? "could not be started" : `exit code ${code}`;
}

/**
 * The local demo of a cluster, in one process: etcd and `nodes` nodes as children, each in a
 * process group of its own, their output in `<data-dir>/<name>.log`. It runs until SIGINT or
 * SIGTERM (then it stops the nodes, then etcd: exit code 0) or until a child stops by itself
 * (then it stops the rest: exit code 1).
 */
class DemoCluster {
  private readonly stop = new AbortController();
  private readonly nodeProcesses: LocalProcess[] = [];
  private etcd: LocalEtcd | undefined;
  private exitCode: ExitCode = EXIT_CODES.ok;
  private readonly nodes: DemoNode[];
  private readonly dataDir: string;

  constructor(
    private readonly options: ClusterUpOptions,
    private readonly out: (line: string) => void,
  ) {
    this.dataDir = resolve(options.dataDir);
    this.nodes = Array.from({ length: options.nodes }, (_, index) => {
      const id = `n${index + 1}`;
      return { id, url: `http://127.0.0.1:${options.port + index}`, dataDir: join(this.dataDir, id) };
    });
  }

  async run(etcdBinary: string): Promise<ExitCode> {
    const onSignal = (signal: NodeJS.Signals) => this.onSignal(signal);
    // If this process ends without stopping them (an error in this code), the children go with it.
    const killChildren = () => this.children().forEach((child) => child.signal("SIGKILL"));
    process.on("SIGINT", onSignal).on("SIGTERM", onSignal).on("exit", killChildren);
    try {
      await this.start(etcdBinary);
      await new Promise((resolve) => this.stop.signal.addEventListener("abort", resolve, { once: true }));
    } catch (error) {
      // A failure because a signal or a child's death began the shutdown has been reported.
      if (!this.stop.signal.aborted) throw error;
    } finally {
      // From here on, children that exit were asked to.
      this.stop.abort();
      await this.stopAll();
      process.off("SIGINT", onSignal).off("SIGTERM", onSignal).off("exit", killChildren);
    }
    return this.exitCode;
  }

  private children(): LocalProcess[] {
    return [...this.nodeProcesses, ...(this.etcd ? [this.etcd.process] : [])];
  }

  private onSignal(signal: NodeJS.Signals): void {
    if (this.stop.signal.aborted) {
      this.out(`${signal} again: killing everything now`);
      this.children().forEach((child) => child.signal("SIGKILL"));
      process.exit(EXIT_CODES.damaged);
    }
    this.out(`${signal}: stopping`);
    this.stop.abort();
  }

  /** A child that stops while nothing asked it to stops the demo. */
  private watch(child: LocalProcess): void {
    void child.ended.then((end) => {
      if (this.stop.signal.aborted) return;
      this.out(`${child.name} stopped by itself (${describeEnd(end)}); the end of ${child.logFile}:\n${child.logTail()}`);
      this.exitCode = EXIT_CODES.damaged;
      this.stop.abort();
    });
  }

  private async start(etcdBinary: string): Promise<void> {
    mkdirSync(this.dataDir, { recursive: true });
    this.out(`etcd: starting ${etcdBinary}, data in ${join(this.dataDir, "etcd")}`);
    const etcd = await startEtcd(etcdBinary, join(this.dataDir, "etcd"), join(this.dataDir, "etcd.log"));
    this.etcd = etcd;
    this.watch(etcd.process);
    this.stop.signal.throwIfAborted();
    this.out(`etcd: ${etcd.url} (pid ${etcd.process.pid})`);

    // The first node founds a new cluster; the others must find its map, or they would found one too.
    const [first, ...others] = this.nodes as [DemoNode, ...DemoNode[]];
    await this.startNode(first, etcd.url);
    await Promise.all(others.map((node) => this.startNode(node, etcd.url)));
    const admin = remote(first.url, undefined, NO_TOKEN);
    await this.poll("every node to be alive in the cluster", async () => {
      const status = await admin.call(() => admin.api.GET("/admin/cluster"));
      return this.nodes.every(({ id }) => status.nodes.some((node) => node.node === id && node.alive));
    });
    await this.rebalance(admin);
    this.printSummary();
  }

  private async startNode(node: DemoNode, etcdUrl: string): Promise<void> {
    const { command, args } = selfCommand();
    const flags = [
      ...["--data-dir", node.dataDir, "--port", String(new URL(node.url).port), "--workers", String(this.options.workers)],
      ...["--shards", String(this.options.shards), "--etcd", etcdUrl, "--cluster", CLUSTER, "--node", node.id],
      ...["--advertise", node.url],
    ];
    // The demo's nodes are what these flags make them: APOSTATE_TOKEN and the like, set for the CLI, stay out.
    const child = LocalProcess.start(node.id, command, [...args, "serve", ...flags], join(this.dataDir, `${node.id}.log`), {
      ...envWithout("APOSTATE_"),
      ...(process.env.APOSTATE_LOG_LEVEL && { APOSTATE_LOG_LEVEL: process.env.APOSTATE_LOG_LEVEL }),
    });
    this.nodeProcesses.push(child);
    this.watch(child);
    const workers = `${this.options.workers} worker${this.options.workers === 1 ? "" : "s"}`;
    this.out(`${node.id}: starting on ${node.url} (pid ${child.pid}, ${workers}, data in ${node.dataDir})`);
    const api = remote(node.url, undefined, NO_TOKEN);
    await this.poll(`${node.id} to be ready`, async () => {
      await api.call(() => api.api.GET("/readyz"));
      return true;
    });
    this.out(`${node.id}: ready`);
  }

  /** Calls `check` until it returns true; a request that fails counts as false. */
  private async poll(what: string, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + READY_WITHIN_MS;
    for (;;) {
      this.stop.signal.throwIfAborted();
      try {
        if (await check()) return;
      } catch (error) {
        if (!(error instanceof OperatorError)) throw error;
      }
      if (Date.now() > deadline) {
        throw new OperatorError(
          `gave up waiting for ${what} after ${READY_WITHIN_MS / 1000} s; see ${this.dataDir}/*.log`,
          EXIT_CODES.damaged,
        );
      }
      await sleep(POLL_MS, undefined, { signal: this.stop.signal });
    }
  }

  /** Lets moves begun before (a run stopped midway) end, then spreads the shards over the nodes. */
  private async rebalance(admin: Remote): Promise<void> {
    const follow = (moves: Move[]) =>
      waitForMoves(admin, moves, (move) => this.out(moveLine(move)), { signal: this.stop.signal });
    const { moves: recorded } = await admin.call(() => admin.api.GET("/admin/cluster"));
    const unfinished = recorded.filter((move) => !isFinished(move));
    if (unfinished.length > 0) {
      this.out(`waiting for ${unfinished.length} move(s) begun before`);
      await follow(unfinished);
    }
    const { moves } = await admin.call(() => admin.api.POST("/admin/cluster/rebalance"));
    if (moves.length === 0) {
      this.out("rebalance: every node has its share already");
      return;
    }
    this.out(`rebalance: ${moves.length} move(s)`);
    moves.forEach((move) => this.out(moveLine(move)));
    const ended = await follow(moves);
    const done = ended.filter((move) => move.state === "done").length;
    this.out(`rebalance: ${done} of ${ended.length} move(s) done`);
  }

  private printSummary(): void {
    const [first, second] = [this.nodes[0] as DemoNode, this.nodes[1] ?? (this.nodes[0] as DemoNode)];
    this.out(
      [
        "",
        `cluster ${CLUSTER} is up: ${this.nodes.length} node(s), etcd at ${this.etcd?.url}`,
        ...this.nodes.map((node) => `  ${node.id}  ${node.url}`),
        "",
        "Try (any node answers any request; Apostate-Served-By names the owner that served it):",
        `  curl ${first.url}/v1/topology`,
        `  curl -i -X PUT ${second.url}/v1/entities/account/alice -H 'Content-Type: application/json' -d '{"balance":100}'`,
        `  apostate cluster status --url ${first.url}`,
        "",
        `Logs: ${this.dataDir}/<name>.log. Ctrl-C stops the nodes and etcd; the same command again resumes this cluster.`,
      ].join("\n"),
    );
  }

  private async stopAll(): Promise<void> {
    const running = this.children().filter((child) => child.running);
    if (running.length > 0) this.out(`stopping ${running.map((child) => child.name).join(", ")}`);
    // The nodes first: a node leaves the cluster (gives up its lease) through etcd.
    await Promise.all(this.nodeProcesses.map((child) => child.stop(NODE_STOP_GRACE_MS)));
    await this.etcd?.process.stop(ETCD_STOP_GRACE_MS);
    this.out("stopped");
  }
}

/**
 * `apostate cluster up`: etcd and `nodes` nodes on this machine, rebalanced, until Ctrl-C.
 * Resolves to the exit code: 0 after a signal, 1 when a child stopped by itself. Throws
 * {@link OperatorError} before starting anything when etcd is missing or a port is taken.
 *
 * @example
 * process.exitCode = await clusterUp({ nodes: 3, dataDir: "./cluster-data", port: 8080, shards: 8, workers: 1 }, console.log);
 */
export async function clusterUp(options: ClusterUpOptions, out: (line: string) => void): Promise<ExitCode> {
  const etcd = findOnPath("etcd");
  if (etcd === undefined) throw new OperatorError(ETCD_MISSING, EXIT_CODES.usage);
  const last = options.port + options.nodes - 1;
  if (last > 65_535)
    throw new OperatorError(`--port ${options.port} leaves no room for ${options.nodes} nodes`, EXIT_CODES.usage);
  for (let port = options.port; port <= last; port++) {
    if (!(await isPortFree(port))) {
      throw new OperatorError(`port ${port} of 127.0.0.1 is taken: choose another --port`, EXIT_CODES.usage);
    }
  }
  return new DemoCluster(options, out).run(etcd);
}
