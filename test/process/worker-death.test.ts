import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";
import { send } from "../support/http.js";
import { sleep } from "../support/raw-socket.js";

/*
 * What a SIGKILLed worker held must not hang: every request in flight is answered, or its
 * connection closed, within a bound; and a worker that keeps dying is replaced with growing
 * gaps instead of in a loop.
 */

/** The pids of the primary's children: its workers. */
function workerPids(server: ServerProcess): number[] {
  const pid = server.child.pid!;
  return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
}

/** A request that the test waits on for at most this long; beyond it, it counts as hanging. */
const HANG_MS = 10_000;

it("every request in flight when a worker is killed is answered or closed, and a replacement serves", async () => {
  const dir = tempDir();
  // Every request logged: its line names the worker that served it.
  const server = await ServerProcess.start({ dataDir: dir.path, workers: 2, args: ["--log-requests", "all"] });
  try {
    let stopped = false;
    const outcomes: { ms: number; status?: number; error?: string }[] = [];
    const client = async (c: number) => {
      for (let i = 0; !stopped; i += 1) {
        const started = performance.now();
        try {
          const res = await fetch(`${server.url}/v1/entities/doc/c${c}-${i % 5}`, {
            method: "PUT",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ c, i, pad: "x".repeat(2000) }),
            signal: AbortSignal.timeout(HANG_MS),
          });
          await res.arrayBuffer();
          outcomes.push({ ms: performance.now() - started, status: res.status });
        } catch (error) {
          const cause = (error as Error & { cause?: Error }).cause;
          outcomes.push({ ms: performance.now() - started, error: `${(error as Error).name}: ${cause?.message ?? ""}` });
        }
      }
    };
    const clients = Array.from({ length: 12 }, (_, c) => client(c));
    await sleep(500);
    const before = workerPids(server);
    const victim = before[0]!;
    process.kill(victim, "SIGKILL");
    await expect.poll(() => workerPids(server).filter((pid) => pid !== victim), { timeout: 20_000 }).toHaveLength(2);
    const replacement = workerPids(server).find((pid) => !before.includes(pid))!;
    await sleep(500);
    stopped = true;
    await Promise.all(clients);

    const hung = outcomes.filter((outcome) => outcome.error?.startsWith("TimeoutError"));
    expect(hung).toEqual([]);
    expect(outcomes.filter((outcome) => outcome.status !== undefined && outcome.status >= 500)).toEqual([]);
    expect(outcomes.filter((outcome) => outcome.status === 200 || outcome.status === 201).length).toBeGreaterThan(10);
    // The replacement serves: the kernel hands it connections from the shared socket.
    const servedByReplacement = async () => {
      await Promise.all(Array.from({ length: 10 }, () => send(server.url, "GET", "/healthz")));
      return server.output.some((line) => line.includes(`"pid":${replacement},`) && line.includes('"msg":"request"'));
    };
    await expect.poll(servedByReplacement, { timeout: 60_000 }).toBe(true);
  } finally {
    await server.stop();
    dir.remove();
  }
}, 180_000);

it("a worker that dies at once on every start is restarted with growing gaps", async () => {
  const dir = tempDir();
  const server = await ServerProcess.start({ dataDir: dir.path, workers: 1 });
  try {
    const killed = new Set<number>();
    const deadline = performance.now() + 4_000;
    // Kill every worker as soon as it appears, for a few seconds.
    while (performance.now() < deadline) {
      for (const pid of workerPids(server)) {
        if (!killed.has(pid)) {
          killed.add(pid);
          process.kill(pid, "SIGKILL");
        }
      }
      await sleep(5);
    }
    await sleep(200);
    const delays = server.output
      .map((line) => JSON.parse(line) as { msg?: string; delayMs?: number })
      .filter((entry) => entry.msg === "worker died; starting another")
      .map((entry) => entry.delayMs);
    // 100 + 200 + 400 + 800 + 1600 ms: in four seconds, five or six deaths, not hundreds.
    expect(delays.length).toBeGreaterThanOrEqual(4);
    expect(delays.length).toBeLessThanOrEqual(6);
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200].slice(0, delays.length));
    expect(killed.size).toBe(delays.length);
  } finally {
    await server.stop();
    dir.remove();
  }
}, 180_000);
