import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { singleMemberArguments } from "../../server/cli/local-etcd.js";
import { freePort } from "../../server/cli/loopback-ports.js";
import { tempDir } from "./temp-dir.js";

const ETCD_BINARY = process.env.ETCD_BINARY ?? "etcd";
const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;

/**
 * A single-member etcd of its own (Debian's `etcd-server`, or `ETCD_BINARY`) on free loopback
 * ports with a temporary data directory. Never a system service: each test file starts one.
 * `stop()` then `start()` restarts the same member with its data (revisions, keys, leases);
 * `pause()`/`resume()` freeze it with SIGSTOP/SIGCONT.
 *
 * @example
 * const etcd = await TestEtcd.start();
 * afterAll(() => etcd.destroy());
 * new Etcd3({ hosts: etcd.url });
 */
export class TestEtcd {
  private child: ChildProcess | undefined;
  private output: string[] = [];
  private readonly dir = tempDir("apostate-etcd-");
  private readonly killOnExit = () => this.child?.kill("SIGKILL");

  private constructor(
    private readonly clientPort: number,
    private readonly peerPort: number,
  ) {}

  static async start(): Promise<TestEtcd> {
    const etcd = new TestEtcd(await freePort(), await freePort());
    await etcd.start();
    return etcd;
  }

  get url(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the member (again, with its data, after `stop()`) and waits until it answers. */
  async start(): Promise<void> {
    if (this.child) throw new Error("etcd is already running");
    const peerUrl = `http://127.0.0.1:${this.peerPort}`;
    this.output = [];
    const child = spawn(
      ETCD_BINARY,
      singleMemberArguments({ name: "test", dataDir: this.dir.path, clientUrl: this.url, peerUrl }),
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const keep = (chunk: Buffer) => this.output.push(chunk.toString());
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    this.child = child;
    process.once("exit", this.killOnExit);
    const spawnFailed = new Promise<never>((_, reject) =>
      child.once("error", (error) => reject(new Error(`cannot run ${ETCD_BINARY}: ${error.message}`))),
    );
    await Promise.race([this.waitUntilHealthy(), spawnFailed]);
  }

  /** SIGTERM, then SIGKILL after a grace period; waits until the process is gone. Keeps the data. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    process.off("exit", this.killOnExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGCONT"); // a paused member cannot act on SIGTERM
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  pause(): void {
    this.signal("SIGSTOP");
  }

  resume(): void {
    this.signal("SIGCONT");
  }

  /** Stops the member and removes its data directory. */
  async destroy(): Promise<void> {
    await this.stop();
    this.dir.remove();
  }

  private signal(signal: NodeJS.Signals): void {
    if (!this.child) throw new Error("etcd is not running");
    this.child.kill(signal);
  }

  private async waitUntilHealthy(): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (this.child?.exitCode !== null) break;
      try {
        const response = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(1_000) });
        const body = (await response.json()) as { health?: string };
        if (body.health === "true") return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    const output = this.output.join("");
    await this.stop();
    throw new Error(`etcd did not become healthy on ${this.url}:\n${output}`);
  }
}
