import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

const LOG_TAIL_BYTES = 16_384;

/** How a child ended: its exit code, or the signal that ended it. */
export interface ProcessEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The environment without one program's settings (`APOSTATE_`, `ETCD_`), which would quarrel with the flags given. */
export function envWithout(prefix: string): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith(prefix)));
}

/**
 * A child of `apostate cluster up` (etcd or a node) in a process group of its own, its output
 * appended to a log file. A terminal's Ctrl-C then reaches `cluster up` alone, which stops the
 * nodes before etcd (a node leaves the cluster through etcd), and a signal sent to the group
 * reaches a node's workers as well as its primary, so nothing is left behind.
 */
export class LocalProcess {
  /** Settles when the child has exited (or could not be started). */
  readonly ended: Promise<ProcessEnd>;
  private end: ProcessEnd | undefined;

  private constructor(
    readonly name: string,
    readonly logFile: string,
    private readonly child: ChildProcess,
  ) {
    this.ended = new Promise((resolve) => {
      const settle = (end: ProcessEnd) => {
        this.end ??= end;
        resolve(this.end);
      };
      child.once("exit", (code, signal) => settle({ code, signal }));
      // spawn's own failure (no such file, not executable): no "exit" follows.
      child.once("error", () => settle({ code: null, signal: null }));
    });
  }

  static start(name: string, command: string, args: readonly string[], logFile: string, env: NodeJS.ProcessEnv): LocalProcess {
    const log = openSync(logFile, "a");
    try {
      const child = spawn(command, args, { detached: true, stdio: ["ignore", log, log], env });
      return new LocalProcess(name, logFile, child);
    } finally {
      // The child holds its own copy of the descriptor.
      closeSync(log);
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.end === undefined;
  }

  /** Sends `signal` to the child's whole process group; a group already gone is no error. */
  signal(signal: NodeJS.Signals): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // the group is gone
    }
  }

  /**
   * SIGTERM to the group, then SIGKILL if the child is still there after `graceMs`; resolves
   * once it has exited. The group gets a SIGKILL in any case, for anything the child left.
   */
  async stop(graceMs: number): Promise<ProcessEnd> {
    this.signal("SIGTERM");
    // Unreferenced: the grace period must not keep this process alive once the child is gone.
    const end = await Promise.race([this.ended, sleep(graceMs, undefined, { ref: false })]);
    this.signal("SIGKILL");
    return end ?? this.ended;
  }

  /** The last `lines` lines of the log (read from its end: a node's log grows by a line a request). */
  logTail(lines = 15): string {
    const fd = openSync(this.logFile, "r");
    try {
      const size = fstatSync(fd).size;
      const tail = Buffer.alloc(Math.min(size, LOG_TAIL_BYTES));
      readSync(fd, tail, 0, tail.length, size - tail.length);
      return tail.toString("utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } finally {
      closeSync(fd);
    }
  }
}
