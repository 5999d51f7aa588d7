import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * A server under load in a child process group of its own: apostate's compiled CLI or a
 * baseline. Both print a JSON line `{"msg":"listening","url":…}` once every worker listens.
 */
export class BenchServer {
  private readonly exited: Promise<void>;
  private readonly output: string[] = [];

  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
  }

  /** `apostate serve` from dist/ (the build `npm run bench` runs first), with default settings. */
  static apostate(dataDir: string, workers: number, args: string[] = []): Promise<BenchServer> {
    const argv = ["dist/server/cli.js", "serve", "--data-dir", dataDir, "--port", "0", "--workers", String(workers), ...args];
    return BenchServer.start(argv);
  }

  static baseline(kind: "express" | "http", workers: number, body: string): Promise<BenchServer> {
    return BenchServer.start(["--import", "tsx", "bench/baseline-server.ts", kind, String(workers), body]);
  }

  private static async start(argv: string[]): Promise<BenchServer> {
    const child = spawn(process.execPath, argv, {
      cwd: ROOT,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const output: string[] = [];
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${output.join("\n")}`)), 120_000);
      const onData = (chunk: Buffer) => {
        for (const line of chunk.toString().split("\n").filter(Boolean)) {
          output.push(line);
          const url = listeningUrl(line);
          if (url) {
            clearTimeout(timer);
            resolve(url);
          }
        }
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.once("exit", (code) => reject(new Error(`server exited with ${code}:\n${output.join("\n")}`)));
    });
    const server = new BenchServer(child, url);
    server.output.push(...output);
    child.stdout?.on("data", (chunk: Buffer) => server.output.push(chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => server.output.push(chunk.toString()));
    return server;
  }

  /** Everything the server printed, for a report of what went wrong. */
  get log(): string {
    return this.output.join("\n");
  }

  /** The peak resident set (VmHWM) of each worker process so far, in bytes; Linux only. */
  workerPeakRss(): number[] {
    const primary = this.child.pid;
    if (primary === undefined || process.platform !== "linux") return [];
    return readdirSync("/proc")
      .filter((entry) => /^\d+$/.test(entry))
      .filter((pid) => parentOf(pid) === primary)
      .map((pid) => peakRss(pid))
      .filter((bytes) => bytes > 0);
  }

  async stop(): Promise<void> {
    try {
      process.kill(-(this.child.pid as number), "SIGTERM");
    } catch {
      return;
    }
    await this.exited;
  }
}

function listeningUrl(line: string): string | undefined {
  try {
    const entry = JSON.parse(line) as { msg?: unknown; url?: unknown };
    return entry.msg === "listening" && typeof entry.url === "string" ? entry.url : undefined;
  } catch {
    return undefined;
  }
}

function readProc(pid: string, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    // The process ended while the list was read.
    return "";
  }
}

function parentOf(pid: string): number | undefined {
  // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so split after ")".
  const stat = readProc(pid, "stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[1] === undefined ? undefined : Number(fields[1]);
}

function peakRss(pid: string): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readProc(pid, "status"));
  return match ? Number(match[1]) * 1024 : 0;
}
