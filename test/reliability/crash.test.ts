import { readFileSync } from "node:fs";
import { afterAll, expect, it } from "vitest";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";
import { acknowledged, expectExactlyOnce, runAppendLoad, settle, type AppendOp } from "./support/append-load.js";
import { setting } from "./support/settings.js";
import { send } from "./support/http.js";
import { sleep } from "./support/raw-socket.js";

/*
 * kill -9 under concurrent load, again and again on one data directory: every acknowledged
 * write must survive with its acknowledged version, a retry of it must be a replay, and every
 * write that was in flight must end up applied exactly once when it is retried.
 */

const dir = tempDir();
afterAll(() => dir.remove());

const ROUNDS = setting(5, 30);
const IDS = ["a", "b", "c", "d", "e", "f"] as const;

/** Deterministic pseudo-random delays, reproducible from APOSTATE_SEED. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    return state / 2 ** 32;
  };
}
const SEED = Number(process.env.APOSTATE_SEED ?? Date.now() % 1_000_000);
/** Every op of every round, for the final exactly-once check. */
const all: AppendOp[] = [];

it(
  `acknowledged writes survive ${ROUNDS} rounds of SIGKILL under load, and nothing applies twice (seed ${SEED})`,
  async () => {
    const next = random(SEED);
    const everything: AppendOp[] = [];
    let acknowledgedCount = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const server = await ServerProcess.start({ dataDir: dir.path, workers: 2 });
      // The previous round's writes, in flight or acknowledged, are settled on this server.
      await settle(server.url, everything.splice(0));
      let stopped = false;
      const ops: AppendOp[] = [];
      const load = runAppendLoad(server.url, ops, { type: "crash", ids: IDS, clients: 8, prefix: `r${round}`, stop: () => stopped });
      // Once writes flow, the kill comes at a random moment among them.
      await expect.poll(() => ops.filter(acknowledged).length, { timeout: 20_000 }).toBeGreaterThan(0);
      await sleep(next() * 500);
      await server.crash();
      stopped = true;
      await load;
      acknowledgedCount += ops.filter(acknowledged).length;
      everything.push(...ops);
      all.push(...ops);
    }
    const server = await ServerProcess.start({ dataDir: dir.path, workers: 2 });
    try {
      await settle(server.url, everything);
      await expectExactlyOnce(server.url, "crash", IDS, all);
    } finally {
      await server.stop();
    }
    console.log(`${ROUNDS} SIGKILL rounds: ${all.length} writes sent, ${acknowledgedCount} acknowledged before a kill, all exactly once`);
  },
  setting(120_000, 1_200_000),
);
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
    const next = random(SEED);
    const workerDir = tempDir();
    const server = await ServerProcess.start({ dataDir: workerDir.path, workers: 2 });
    try {
      let stopped = false;
      const ops: AppendOp[] = [];
      const load = runAppendLoad(server.url, ops, { type: "worker", ids: IDS, clients: 8, prefix: "w", stop: () => stopped, retry: true });
      for (let kill = 0; kill < setting(1, 20); kill++) {
        await sleep(200 + next() * 300);
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
