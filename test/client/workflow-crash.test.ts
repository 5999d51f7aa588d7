import { afterAll, describe, expect, it } from "vitest";
import { createClient, NetworkError, WORKFLOW_TYPE, WorkflowError, type WorkflowResult } from "../../client/index.js";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";
import {
  expectExactlyOnce,
  randomTransfers,
  recordingFetch,
  seededRandom,
  settleAll,
  transferSteps,
  type Transfer,
} from "../support/client-helpers.js";

const SEED = Number(process.env.APOSTATE_FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));
const ACCOUNTS = 10;
const FROZEN = new Set(["acct-07"]);
const INITIAL_BALANCE = 1_000;
const WORKFLOWS = 300;
/** The server is killed once this many workflows of the batch have settled. */
const KILL_AFTER = 60;

const dir = tempDir("apostate-client-crash-");
let server: ServerProcess | undefined;
afterAll(async () => {
  await server?.crash();
  dir.remove();
});

describe(`workflows across a server crash (APOSTATE_FAULT_SEED=${SEED})`, () => {
  // About 20 s on two idle cores; the limit leaves room for a machine busy with other test runs.
  it(
    "completes every workflow exactly once when each id is run again after SIGKILL and restart",
    { timeout: 180_000 },
    async () => {
      server = await ServerProcess.start({ dataDir: dir.path, workers: 2 });
      const ids = Array.from({ length: ACCOUNTS }, (_, i) => `acct-${String(i).padStart(2, "0")}`);
      const setup = createClient({ baseUrl: server.url });
      await Promise.all(ids.map((id) => setup.put("account", id, { balance: INITIAL_BALANCE, frozen: FROZEN.has(id), log: [] })));
      // The batch gives up quickly once the server is gone, so the crash interrupts it instead of
      // waiting it out; a workflow that gives up early for any reason is simply run again later.
      const before = createClient({
        baseUrl: server.url,
        timeoutMs: 2_000,
        retry: { maxAttempts: 3, baseDelayMs: 5, deadlineMs: 3_000 },
      });
      const transfers = randomTransfers(`crash-${SEED}-`, WORKFLOWS, ids, seededRandom(SEED));
      const stepsOf = (t: Transfer) => transferSteps(t.id, t.from, t.to, t.amount);

      let settled = 0;
      let killed: Promise<void> | undefined;
      const crashing = server;
      const first = await settleAll(
        transfers.map((t) => async () => {
          try {
            return await before.workflow(t.id, stepsOf(t));
          } finally {
            settled += 1;
            if (settled === KILL_AFTER) killed = crashing.crash();
          }
        }),
        16,
      );
      await killed;
      const interrupted = first.filter((o) => o.status === "rejected" && o.reason instanceof NetworkError).length;
      expect(interrupted).toBeGreaterThan(0);

      server = await ServerProcess.start({ dataDir: dir.path, workers: 2 });
      const after = createClient({ baseUrl: server.url, retry: { baseDelayMs: 5 } });
      const unfinished = [];
      for await (const progress of after.list(WORKFLOW_TYPE, { prefix: `crash-${SEED}-`, pageSize: 1000 })) {
        if (progress.data.status === "running" || progress.data.status === "compensating") unfinished.push(progress.id);
      }
      const second = await settleAll(
        transfers.map((t) => () => after.workflow(t.id, stepsOf(t))),
        16,
      );
      await expectExactlyOnce(after, transfers, second, { accounts: ACCOUNTS, initialBalance: INITIAL_BALANCE, frozen: FROZEN });

      // Workflows that finished before the crash kept their outcome.
      first.forEach((outcome, n) => {
        const again = second[n] as PromiseSettledResult<WorkflowResult>;
        if (outcome.status === "fulfilled") expect(again).toEqual(outcome);
        else if (outcome.reason instanceof WorkflowError) {
          expect(again).toMatchObject({ status: "rejected", reason: { message: outcome.reason.message } });
        }
      });

      // Now every one is finished: running them all again sends nothing but the progress check
      // (routing "base": the default routing's one map load would be in the record too).
      const { fetch, sent } = recordingFetch();
      const recorded = createClient({ baseUrl: server.url, fetch, routing: "base" });
      const third = await settleAll(
        transfers.map((t) => () => recorded.workflow(t.id, stepsOf(t))),
        16,
      );
      expect(third.map((o) => o.status)).toEqual(second.map((o) => o.status));
      expect(sent).toHaveLength(WORKFLOWS);
      expect(sent.every((r) => r.path.startsWith(`/v1/entities/${WORKFLOW_TYPE}/`))).toBe(true);
      console.info(`crash test: ${interrupted} workflows interrupted, ${unfinished.length} left unfinished on disk`);
    },
  );
});
