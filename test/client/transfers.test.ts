import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, WORKFLOW_TYPE, type ApostateClient } from "../../client/index.js";
import { FaultProxy } from "../support/fault-proxy.js";
import {
  expectExactlyOnce,
  randomTransfers,
  seededRandom,
  settleAll,
  startServer,
  transferSteps,
} from "../support/client-helpers.js";

/** `APOSTATE_FAULT_SEED=<n>` replays a schedule; by default each run draws a new seed and prints it. */
const SEED = Number(process.env.APOSTATE_FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));
const ACCOUNTS = 20;
const FROZEN = new Set(["acct-03", "acct-11"]);
const INITIAL_BALANCE = 1_000;
const TRANSFERS = 1_000;
const CONCURRENCY = 32;

let direct: ApostateClient;
let proxy: FaultProxy;
let stop: () => Promise<void>;

beforeAll(async () => {
  const started = await startServer(2);
  stop = started.stop;
  direct = createClient({ baseUrl: started.server.url });
  proxy = await FaultProxy.start({
    target: started.server.url,
    seed: SEED,
    rates: { unavailable: 0.05, delay: 0.1, dropAfterAnswer: 0.05 },
  });
});
afterAll(async () => {
  await proxy.close();
  await stop();
});

describe(`transfers through a faulty network (APOSTATE_FAULT_SEED=${SEED})`, () => {
  // About 25 s on two idle cores; the limit leaves room for a machine busy with other test runs.
  it(`applies each of ${TRANSFERS} concurrent transfers exactly once and conserves money`, { timeout: 240_000 }, async () => {
    const ids = Array.from({ length: ACCOUNTS }, (_, i) => `acct-${String(i).padStart(2, "0")}`);
    await Promise.all(ids.map((id) => direct.put("account", id, { balance: INITIAL_BALANCE, frozen: FROZEN.has(id), log: [] })));

    const transfers = randomTransfers(`tr-${SEED}-`, TRANSFERS, ids, seededRandom(SEED ^ 0x5eed));

    const db = createClient({
      baseUrl: proxy.url,
      retry: { maxAttempts: 12, baseDelayMs: 5, maxDelayMs: 200, deadlineMs: 60_000 },
    });
    const outcomes = await settleAll(
      transfers.map((t) => () => db.workflow(t.id, transferSteps(t.id, t.from, t.to, t.amount))),
      CONCURRENCY,
    );

    expect(proxy.counts.unavailable).toBeGreaterThan(0);
    expect(proxy.counts.delay).toBeGreaterThan(0);
    expect(proxy.counts["drop-after-answer"]).toBeGreaterThan(0);

    const { completed, compensated } = await expectExactlyOnce(direct, transfers, outcomes, {
      accounts: ACCOUNTS,
      initialBalance: INITIAL_BALANCE,
      frozen: FROZEN,
    });
    expect(completed).toBeGreaterThan(TRANSFERS / 2);
    expect(compensated).toBeGreaterThan(0);
    console.info(`transfers: ${completed} completed, ${compensated} compensated, faults ${JSON.stringify(proxy.counts)}`);

    let recorded = 0;
    for await (const progress of direct.list(WORKFLOW_TYPE, { prefix: `tr-${SEED}-`, pageSize: 1000 })) {
      expect(["completed", "compensated"]).toContain(progress.data.status);
      recorded += 1;
    }
    expect(recorded).toBe(TRANSFERS);
  });
});
