import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, WORKFLOW_TYPE, WorkflowError, type ApostateClient, type Entity } from "../../client/index.js";
import { FaultProxy } from "./fault-proxy.js";
import { logOf, seededRandom, settleAll, startServer, transferSteps } from "./helpers.js";

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

interface Transfer {
  id: string;
  from: string;
  to: string;
  amount: number;
}

describe(`transfers through a faulty network (APOSTATE_FAULT_SEED=${SEED})`, () => {
  it(`applies each of ${TRANSFERS} concurrent transfers exactly once and conserves money`, { timeout: 110_000 }, async () => {
    const ids = Array.from({ length: ACCOUNTS }, (_, i) => `acct-${String(i).padStart(2, "0")}`);
    await Promise.all(ids.map((id) => direct.put("account", id, { balance: INITIAL_BALANCE, frozen: FROZEN.has(id), log: [] })));

    const random = seededRandom(SEED ^ 0x5eed);
    const pick = () => ids[Math.floor(random() * ids.length)] as string;
    const transfers: Transfer[] = Array.from({ length: TRANSFERS }, (_, n) => {
      const from = pick();
      let to = pick();
      while (to === from) to = pick();
      return { id: `tr-${SEED}-${n}`, from, to, amount: 1 + Math.floor(random() * 400) };
    });

    const db = createClient({ baseUrl: proxy.url, retry: { maxAttempts: 12, baseDelayMs: 5, maxDelayMs: 200, deadlineMs: 60_000 } });
    const outcomes = await settleAll(
      transfers.map((t) => () => db.workflow(t.id, transferSteps(t.id, t.from, t.to, t.amount))),
      CONCURRENCY,
    );

    // Every fault kind happened, and every workflow reached an outcome of its own.
    expect(proxy.counts.unavailable).toBeGreaterThan(0);
    expect(proxy.counts.delay).toBeGreaterThan(0);
    expect(proxy.counts["drop-after-answer"]).toBeGreaterThan(0);
    const unexpected = outcomes.filter((o) => o.status === "rejected" && !(o.reason instanceof WorkflowError));
    expect(unexpected).toEqual([]);

    const accounts = new Map<string, Entity>();
    for await (const account of direct.list("account", { pageSize: 100 })) accounts.set(account.id, account);
    expect(accounts.size).toBe(ACCOUNTS);

    let total = 0;
    for (const account of accounts.values()) {
      const balance = account.data.balance as number;
      expect(balance, `${account.id} went negative`).toBeGreaterThanOrEqual(0);
      const logged = logOf(account.data).reduce((sum, entry) => sum + entry.amount, 0);
      expect(balance, `${account.id}'s balance disagrees with its log`).toBe(INITIAL_BALANCE + logged);
      total += balance;
    }
    expect(total).toBe(ACCOUNTS * INITIAL_BALANCE);

    const entriesOf = (account: string, transfer: string) =>
      logOf((accounts.get(account) as Entity).data).filter((entry) => entry.transfer === transfer);
    let completed = 0;
    let compensated = 0;
    outcomes.forEach((outcome, n) => {
      const t = transfers[n] as Transfer;
      const from = entriesOf(t.from, t.id);
      const to = entriesOf(t.to, t.id);
      if (outcome.status === "fulfilled") {
        completed += 1;
        expect({ from, to }, t.id).toEqual({ from: [{ transfer: t.id, amount: -t.amount }], to: [{ transfer: t.id, amount: t.amount }] });
      } else if ((outcome.reason as WorkflowError).failedStep === "debit") {
        expect({ from, to }, t.id).toEqual({ from: [], to: [] });
      } else {
        compensated += 1;
        expect(FROZEN.has(t.to), t.id).toBe(true);
        expect({ from, to }, t.id).toEqual({
          from: [
            { transfer: t.id, amount: -t.amount },
            { transfer: t.id, amount: t.amount, refund: true },
          ],
          to: [],
        });
      }
    });
    expect(completed).toBeGreaterThan(TRANSFERS / 2);
    expect(compensated).toBeGreaterThan(0);

    let recorded = 0;
    for await (const progress of direct.list(WORKFLOW_TYPE, { prefix: `tr-${SEED}-`, pageSize: 1000 })) {
      expect(["completed", "compensated"]).toContain(progress.data.status);
      recorded += 1;
    }
    expect(recorded).toBe(TRANSFERS);
  });
});
