import { expect } from "vitest";
import { startTempServer, type TempServer } from "./server-process.js";
import {
  createClient,
  WorkflowError,
  type ApostateClient,
  type Entity,
  type RetryOptions,
  type WorkflowResult,
  type WorkflowStep,
} from "../../client/index.js";

/** A real server over a fresh data directory; `stop()` ends it and removes the directory. */
export function startServer(workers = 1): Promise<TempServer> {
  return startTempServer({ workers });
}

/** A real server for one test file and a client of it with the given (short) retry waits. */
export async function startServerAndClient(
  retry: Partial<RetryOptions>,
): Promise<{ baseUrl: string; db: ApostateClient; stop: () => Promise<void> }> {
  const { server, stop } = await startServer();
  return { baseUrl: server.url, db: createClient({ baseUrl: server.url, retry }), stop };
}

/** One request as the client sent it. */
export interface SentRequest {
  method: string;
  path: string;
  idempotencyKey: string | null;
  headers: Headers;
}

/**
 * A `fetch` that records every request and lets a test decide, per request, to answer it
 * itself (`intercept` returns a Response or throws) instead of passing it on.
 */
export function recordingFetch(
  intercept: (request: Request, index: number) => Promise<Response | undefined> | Response | undefined = () => undefined,
): { fetch: (request: Request) => Promise<Response>; sent: SentRequest[] } {
  const sent: SentRequest[] = [];
  return {
    sent,
    fetch: async (request) => {
      const index = sent.length;
      sent.push({
        method: request.method,
        path: new URL(request.url).pathname,
        idempotencyKey: request.headers.get("Idempotency-Key"),
        headers: request.headers,
      });
      return (await intercept(request, index)) ?? fetch(request);
    },
  };
}

/** Resolves to the error a promise rejects with; fails the test when it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (error: unknown) => error,
  );
}

/** A problem response as apostate would send it. */
export function problemResponse(status: number, code: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ type: `urn:apostate:problem:${code}`, title: code, status, code, detail: code }), {
    status,
    headers: { "Content-Type": "application/problem+json", ...headers },
  });
}

/** The transfer example: debit `from` if the balance suffices, credit `to` unless it is frozen, refund on failure. */
export function transferSteps(transfer: string, from: string, to: string, amount: number): WorkflowStep[] {
  return [
    {
      name: "debit",
      type: "account",
      id: from,
      ops: {
        if: [{ path: "/balance", op: "gte", value: amount }],
        do: [
          { op: "inc", path: "/balance", value: -amount },
          { op: "append", path: "/log", value: { transfer, amount: -amount } },
        ],
      },
      compensate: {
        do: [
          { op: "inc", path: "/balance", value: amount },
          { op: "append", path: "/log", value: { transfer, amount, refund: true } },
        ],
      },
    },
    {
      name: "credit",
      type: "account",
      id: to,
      ops: {
        if: [{ path: "/frozen", op: "ne", value: true }],
        do: [
          { op: "inc", path: "/balance", value: amount },
          { op: "append", path: "/log", value: { transfer, amount } },
        ],
      },
    },
  ];
}

/** A log entry of an account, as {@link transferSteps} appends them. */
export interface LogEntry {
  transfer: string;
  amount: number;
  refund?: boolean;
}

export function logOf(data: Record<string, unknown>): LogEntry[] {
  return (Array.isArray(data.log) ? data.log : []) as LogEntry[];
}

/** A small seeded PRNG (mulberry32), so a failing run can be repeated with its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Runs `tasks` with at most `limit` in flight; resolves to their settled results in order. */
export async function settleAll<T>(tasks: (() => Promise<T>)[], limit: number): Promise<PromiseSettledResult<T>[]> {
  const results: PromiseSettledResult<T>[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const index = next++;
      const task = tasks[index] as () => Promise<T>;
      results[index] = await task().then(
        (value) => ({ status: "fulfilled", value }) as const,
        (reason: unknown) => ({ status: "rejected", reason }) as const,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

/** One money transfer between two accounts. */
export interface Transfer {
  id: string;
  from: string;
  to: string;
  amount: number;
}

/** `count` transfers between distinct random accounts of 1–400 each, ids `<prefix><n>`. */
export function randomTransfers(prefix: string, count: number, accounts: readonly string[], random: () => number): Transfer[] {
  const pick = () => accounts[Math.floor(random() * accounts.length)] as string;
  return Array.from({ length: count }, (_, n) => {
    const from = pick();
    let to = pick();
    while (to === from) to = pick();
    return { id: `${prefix}${n}`, from, to, amount: 1 + Math.floor(random() * 400) };
  });
}

/**
 * Checks the accounts' entities, not any client-side count: money is conserved, no balance is
 * negative, every balance equals its log, and each transfer left exactly the log entries its
 * outcome implies (completed: one debit and one credit; failed at the debit: nothing; failed
 * at the credit: one debit and one refund).
 */
export async function expectExactlyOnce(
  db: ApostateClient,
  transfers: readonly Transfer[],
  outcomes: readonly PromiseSettledResult<WorkflowResult>[],
  ledger: { accounts: number; initialBalance: number; frozen: ReadonlySet<string> },
): Promise<{ completed: number; compensated: number }> {
  const unexpected = outcomes.filter((o) => o.status === "rejected" && !(o.reason instanceof WorkflowError));
  expect(unexpected).toEqual([]);

  const accounts = new Map<string, Entity>();
  for await (const account of db.list("account", { pageSize: 100 })) accounts.set(account.id, account);
  expect(accounts.size).toBe(ledger.accounts);
  let total = 0;
  for (const account of accounts.values()) {
    const balance = account.data.balance as number;
    expect(balance, `${account.id} went negative`).toBeGreaterThanOrEqual(0);
    const logged = logOf(account.data).reduce((sum, entry) => sum + entry.amount, 0);
    expect(balance, `${account.id}'s balance disagrees with its log`).toBe(ledger.initialBalance + logged);
    total += balance;
  }
  expect(total).toBe(ledger.accounts * ledger.initialBalance);

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
      expect({ from, to }, t.id).toEqual({
        from: [{ transfer: t.id, amount: -t.amount }],
        to: [{ transfer: t.id, amount: t.amount }],
      });
    } else if ((outcome.reason as WorkflowError).failedStep === "debit") {
      expect({ from, to }, t.id).toEqual({ from: [], to: [] });
    } else {
      compensated += 1;
      expect(ledger.frozen.has(t.to), t.id).toBe(true);
      expect({ from, to }, t.id).toEqual({
        from: [
          { transfer: t.id, amount: -t.amount },
          { transfer: t.id, amount: t.amount, refund: true },
        ],
        to: [],
      });
    }
  });
  return { completed, compensated };
}
