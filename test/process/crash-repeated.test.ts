import { expect, it, onTestFinished } from "vitest";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";
import { acknowledged, expectExactlyOnce, runAppendLoad, settle, type AppendOp } from "../support/append-load.js";
import { setting } from "../support/settings.js";
import { sleep } from "../support/raw-socket.js";

/*
 * kill -9 under concurrent load, again and again on one data directory: every acknowledged
 * write must survive with its acknowledged version, a retry of it must be a replay, and every
 * write that was in flight must end up applied exactly once when it is retried.
 */

const ROUNDS = setting(3, 30);
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
    const dir = tempDir();
    onTestFinished(() => dir.remove());
    const everything: AppendOp[] = [];
    let acknowledgedCount = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const server = await ServerProcess.start({ dataDir: dir.path, workers: 2 });
      // The previous round's writes, in flight or acknowledged, are settled on this server.
      await settle(server.url, everything.splice(0));
      let stopped = false;
      const ops: AppendOp[] = [];
      const load = runAppendLoad(server.url, ops, {
        type: "crash",
        ids: IDS,
        clients: 8,
        prefix: `r${round}`,
        stop: () => stopped,
      });
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
    console.log(
      `${ROUNDS} SIGKILL rounds: ${all.length} writes sent, ${acknowledgedCount} acknowledged before a kill, all exactly once`,
    );
  },
  setting(120_000, 1_200_000),
);
