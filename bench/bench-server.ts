import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/*
 * Servers run in process groups of their own (so a stop reaches every worker), which also
 * means an interrupted benchmark would leave them running: stop them on the way out.
 */
const running = new Set<ChildProcess>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    for (const child of running) killGroup(child, "SIGTERM");
    process.exit(130);
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-(child.pid as number), signal);
    return true;
  } catch {
    return false;
  }
}

export interface ApostateOptions {
  workers: number;
  /** More `serve` flags. */
  args?: string[];
  /** 0 (the default) picks a free one. */
  port?: number;
  /** Where its processes write CPU profiles when they exit, when profiled. */
  profileDir?: string;
}

/**
 * A server under load in a child process group of its own: apostate's compiled CLI or a
 * baseline. Both print a JSON line `{"msg":"listening","url":…}` once every worker listens.
 */
export class BenchServer {
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
    private readonly logFile: string,
    /** Where its processes write CPU profiles when they exit, when profiled. */
    readonly profileDir?: string,
  ) {
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
  }

  /**
   * `apostate serve` from dist/ (the build `npm run bench` runs first), with default settings
   * on a free port unless `port` names one. With `profileDir`, the primary and its workers
   * (which inherit node's flags) write CPU profiles.
   */
  static apostate(logFile: string, dataDir: string, options: ApostateOptions): Promise<BenchServer> {
    const { workers, args = [], port = 0, profileDir } = options;
    const profile = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
    const argv = [
      ...profile,
      "dist/server/main.js",
      "serve",
      "--data-dir",
      dataDir,
      "--port",
      String(port),
      "--workers",
      String(workers),
      ...args,
    ];
    return BenchServer.start(logFile, argv, profileDir);
  }

  static baseline(logFile: string, kind: "express" | "http", workers: number, body: string): Promise<BenchServer> {
    return BenchServer.start(logFile, ["--import", "tsx", "bench/baseline-server.ts", kind, String(workers), body]);
  }

  /** The forwarding baseline (proxy-server.ts): bare node:http passing requests on to `target`. */
  static proxy(logFile: string, target: string): Promise<BenchServer> {
    return BenchServer.start(logFile, ["--import", "tsx", "bench/proxy-server.ts", target]);
  }

  /** The limit baseline (limit-server.ts), each worker on its own copy of `dataDir` under `workDir`. */
  static limit(logFile: string, workers: number, dataDir: string, workDir: string): Promise<BenchServer> {
    return BenchServer.start(logFile, ["--import", "tsx", "bench/limit-server.ts", String(workers), dataDir, workDir]);
  }

  /*
   * The output goes to a file, as in a deployment: with `--log-requests all` apostate logs a line
   * per request, and reading that through a pipe would cost the load generator's process CPU.
   */
  private static async start(logFile: string, argv: string[], profileDir?: string): Promise<BenchServer> {
    const fd = openSync(logFile, "w");
    const child = spawn(process.execPath, argv, { cwd: ROOT, detached: true, stdio: ["ignore", fd, fd] });
    closeSync(fd);
    running.add(child);
    child.once("exit", () => running.delete(child));
    let exitCode: number | null | undefined;
    child.once("exit", (code) => (exitCode = code));
    const deadline = performance.now() + 120_000;
    for (;;) {
      const url = readFileSync(logFile, "utf8").split("\n").map(listeningUrl).find(Boolean);
      if (url) return new BenchServer(child, url, logFile, profileDir);
      if (exitCode !== undefined || performance.now() > deadline) {
        killGroup(child, "SIGKILL");
        throw new Error(`server did not start (exit ${exitCode}):\n${readFileSync(logFile, "utf8")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The last lines the server printed, for a report of what went wrong. */
  get log(): string {
    return readFileSync(this.logFile, "utf8").split("\n").slice(-50).join("\n");
  }

  /** The peak resident set (VmHWM) of each worker process so far, in bytes; Linux only. */
  workerPeakRss(): number[] {
    return this.workers()
      .map((pid) => peakRss(pid))
      .filter((bytes) => bytes > 0);
  }

  /** User and system CPU time of all workers so far, in seconds; null where /proc is missing. */
  workerCpuSeconds(): number | null {
    const workers = this.workers();
    if (workers.length === 0) return null;
    return workers.reduce((total, pid) => total + cpuSeconds(pid), 0);
  }

  /** User and system CPU time of the primary and all workers so far, in seconds; null where /proc is missing. */
  cpuSeconds(): number | null {
    const workers = this.workerCpuSeconds();
    const primary = this.child.pid;
    return workers === null || primary === undefined ? null : workers + cpuSeconds(String(primary));
  }

  private workers(): string[] {
    const primary = this.child.pid;
    if (primary === undefined || process.platform !== "linux") return [];
    return readdirSync("/proc")
      .filter((entry) => /^\d+$/.test(entry))
      .filter((pid) => Number(statFields(pid)[1]) === primary);
  }

  /** The primary's process id. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  async stop(): Promise<void> {
    if (killGroup(this.child, "SIGTERM")) await this.exited;
  }

  /** `kill -9` of the primary and its workers. */
  async crash(): Promise<void> {
    if (killGroup(this.child, "SIGKILL")) await this.exited;
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

/** /proc/<pid>/stat from the state on: "pid (comm) state ppid …"; comm may hold spaces. */
function statFields(pid: string): string[] {
  const stat = readProc(pid, "stat");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** Linux reports CPU times in clock ticks of 1/100 s (USER_HZ) on every mainstream platform. */
const TICKS_PER_SECOND = 100;

/** User and system CPU time of process `pid` so far, in seconds (0 once it has gone). */
export function cpuSeconds(pid: string): number {
  // utime and stime are fields 14 and 15 of stat, 12 and 13 after the state.
  const fields = statFields(pid);
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / TICKS_PER_SECOND;
}

function peakRss(pid: string): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readProc(pid, "status"));
  return match ? Number(match[1]) * 1024 : 0;
}
