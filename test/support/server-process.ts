import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { tempDir } from "./temp-dir.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface ServerOptions {
  dataDir: string;
  workers?: number;
  /** More `serve` flags, e.g. ["--durability", "power"]. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Run the compiled server (dist/) instead of the TypeScript sources. */
  compiled?: boolean;
  /** Run this command (e.g. `npx apostate serve` in a project that installed the package) instead. */
  command?: string[];
  /** Where the command runs; the repository by default. */
  cwd?: string;
}

/** `apostate serve` on a free port, in a process group of its own. */
function spawnServer(options: ServerOptions): ChildProcess {
  const entry = options.compiled ? ["dist/server/main.js"] : ["--import", "tsx", "server/main.ts"];
  const [program, ...command] = options.command ?? [process.execPath, ...entry, "serve"];
  const flags = ["--data-dir", options.dataDir, "--port", "0", "--workers", String(options.workers ?? 1)];
  return spawn(program as string, [...command, ...flags, ...(options.args ?? [])], {
    cwd: options.cwd ?? ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, APOSTATE_LOG_LEVEL: "info", ...options.env },
  });
}

/**
 * A real `apostate serve` in a child process of its own process group, so that `kill("SIGKILL")`
 * takes the primary and every worker down at once, like a crash of the machine's server.
 */
export class ServerProcess {
  readonly output: string[] = [];
  url = "";
  private readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  }

  static async start(options: ServerOptions): Promise<ServerProcess> {
    const server = new ServerProcess(spawnServer(options));
    await server.waitForListening();
    return server;
  }

  /** Starts a server that is expected to refuse to start; resolves to its exit code and output. */
  static async startFailing(options: ServerOptions): Promise<{ code: number | null; output: string }> {
    const child = spawnServer(options);
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const [code] = (await once(child, "exit")) as [number | null];
    clearTimeout(timer);
    return { code, output };
  }

  /** Sends a signal to the whole process group (primary and workers). */
  kill(signal: NodeJS.Signals): void {
    try {
      process.kill(-(this.child.pid as number), signal);
    } catch {
      // already gone
    }
  }

  /** SIGKILL of every process, then waits until the primary is reaped. */
  async crash(): Promise<void> {
    this.kill("SIGKILL");
    await this.exited;
  }

  /** SIGTERM, then the primary's exit code. */
  async stop(): Promise<number | null> {
    this.kill("SIGTERM");
    return this.exited;
  }

  get exitCode(): Promise<number | null> {
    return this.exited;
  }

  /** Generous: on a shared 2-core machine, tsx workers under a full test run can take long to load. */
  private async waitForListening(): Promise<void> {
    const lines = (chunk: Buffer) => chunk.toString().split("\n").filter(Boolean);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${this.output.join("\n")}`)), 90_000);
      const onLine = (line: string) => {
        this.output.push(line);
        if (this.url) return;
        try {
          const entry = JSON.parse(line) as { msg?: string; url?: string };
          if (entry.msg === "listening" && entry.url) {
            this.url = entry.url;
            clearTimeout(timer);
            resolve();
          }
        } catch {
          // not a log line
        }
      };
      this.child.stdout?.on("data", (chunk: Buffer) => lines(chunk).forEach(onLine));
      this.child.stderr?.on("data", (chunk: Buffer) => lines(chunk).forEach(onLine));
      this.child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code}:\n${this.output.join("\n")}`));
      });
    });
  }
}

export interface TempServer {
  server: ServerProcess;
  dataDir: string;
  /** Stops the server (SIGTERM) and removes its data directory. */
  stop: () => Promise<void>;
}

/** A real server over a fresh data directory of its own. */
export async function startTempServer(options: Omit<ServerOptions, "dataDir"> = {}): Promise<TempServer> {
  const dir = tempDir();
  const server = await ServerProcess.start({ ...options, dataDir: dir.path });
  return {
    server,
    dataDir: dir.path,
    stop: async () => {
      await server.stop();
      dir.remove();
    },
  };
}
