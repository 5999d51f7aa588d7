import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";
import { expectExactlyOnce, runAppendLoad, settle, type AppendOp } from "../support/append-load.js";
import { send } from "../support/http.js";
import { sleep } from "../support/raw-socket.js";
import { setting } from "../support/settings.js";

/*
 * kill -9 of single workers under load: the primary replaces each, and clients that time out
 * and retry with their idempotency keys lose nothing and duplicate nothing.
 */

const IDS = ["a", "b", "c", "d", "e", "f"] as const;

/** True once a request has been logged by worker `pid` (each request log line names its pid). */
async function servedBy(server: ServerProcess, pid: number): Promise<boolean> {
  await send(server.url, "GET", "/healthz").catch(() => undefined);
  return server.output.some((line) => line.includes(`"pid":${pid},`) && line.includes('"msg":"request"'));
}

/** The pids of the primary's children: its workers. */
function workerPids(server: ServerProcess): number[] {
  const pid = server.child.pid!;
  return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
}

it(
  "a worker killed under load is replaced; clients that retry lose nothing and duplicate nothing",
  async () => {
    const workerDir = tempDir();
    // Every request logged: its line names the worker that served it.
    const server = await ServerProcess.start({ dataDir: workerDir.path, workers: 2, args: ["--log-requests", "all"] });
    try {
      let stopped = false;
      const ops: AppendOp[] = [];
      const load = runAppendLoad(server.url, ops, {
        type: "worker",
        ids: IDS,
        clients: 8,
        prefix: "w",
        stop: () => stopped,
        retry: true,
      });
      for (let kill = 0; kill < setting(1, 20); kill++) {
        await sleep(200 + Math.random() * 300);
        const before = workerPids(server);
        const victim = before[0];
        process.kill(victim!, "SIGKILL");
        await expect.poll(() => workerPids(server).filter((pid) => pid !== victim), { timeout: 20_000 }).toHaveLength(2);
        // Only once the replacement serves may the next kill come: with both workers gone at once
        // the cluster would close its listening socket, and `--port 0` would pick a new port.
        const replacement = workerPids(server).find((pid) => !before.includes(pid))!;
        await expect.poll(async () => servedBy(server, replacement), { timeout: 20_000 }).toBe(true);
      }
      await sleep(300);
      stopped = true;
      await load;
      await settle(server.url, ops);
      await expectExactlyOnce(server.url, "worker", IDS, ops);
    } finally {
      await server.stop();
      workerDir.remove();
    }
  },
  setting(120_000, 1_200_000),
);
