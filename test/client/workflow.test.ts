import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConditionFailedError,
  createClient,
  NetworkError,
  WORKFLOW_TYPE,
  WorkflowDefinitionError,
  WorkflowError,
  type ApostateClient,
} from "../../client/index.js";
import {
  logOf,
  problemResponse,
  recordingFetch,
  rejectionOf,
  startServerAndClient,
  transferSteps,
  type SentRequest,
} from "../support/client-helpers.js";

let baseUrl = "";
let db: ApostateClient;
let stop: () => Promise<void>;

beforeAll(async () => {
  ({ baseUrl, db, stop } = await startServerAndClient({ baseDelayMs: 5 }));
});
afterAll(() => stop());

/**
 * A client that records its requests. Routing "base" keeps the one map load of the default
 * routing out of the record (test/client/routing.test.ts covers routing).
 */
function recordedClient(intercept?: Parameters<typeof recordingFetch>[0]): { client: ApostateClient; sent: SentRequest[] } {
  const { fetch, sent } = recordingFetch(intercept);
  return { client: createClient({ baseUrl, fetch, routing: "base" }), sent };
}

async function openAccounts(accounts: Record<string, Record<string, unknown>>): Promise<void> {
  await Promise.all(Object.entries(accounts).map(([id, data]) => db.put("account", id, data)));
}

/**
 * A client whose process "crashes" at the request with the given idempotency key: before it is
 * sent, or after the server applied it but before the answer arrives. Every later request fails
 * too, and nothing is retried, as if the process had died there.
 */
function crashingClient(key: string, moment: "before" | "after"): ApostateClient {
  let crashed = false;
  const { fetch } = recordingFetch(async (request) => {
    if (crashed) throw new TypeError("fetch failed: the process is gone");
    if (request.headers.get("Idempotency-Key") !== key) return undefined;
    crashed = true;
    if (moment === "after") await (await globalThis.fetch(request)).arrayBuffer();
    throw new TypeError("fetch failed: the process is gone");
  });
  return createClient({ baseUrl, fetch, retry: { maxAttempts: 1 } });
}

describe("workflow", () => {
  it("runs the steps in order with derived keys, and a re-run returns the recorded result without sending a step", async () => {
    await openAccounts({ "a-1": { balance: 100 }, "b-1": { balance: 0 } });
    const steps = transferSteps("t-1", "a-1", "b-1", 30);
    const first = recordingFetch();
    const result = await createClient({ baseUrl, fetch: first.fetch }).workflow("t-1", steps);
    expect(result).toEqual({
      id: "t-1",
      status: "completed",
      steps: [
        { name: "debit", type: "account", id: "a-1", version: 2 },
        { name: "credit", type: "account", id: "b-1", version: 2 },
      ],
    });
    expect(first.sent.filter((r) => r.path.startsWith("/v1/entities/account/")).map((r) => r.idempotencyKey)).toEqual([
      "wf/t-1/debit",
      "wf/t-1/credit",
    ]);
    expect(await db.get("account", "a-1")).toMatchObject({ data: { balance: 70 } });
    expect(await db.get("account", "b-1")).toMatchObject({ data: { balance: 30 } });
    expect(await db.get(WORKFLOW_TYPE, "t-1")).toMatchObject({ data: { status: "completed", failedStep: null, failure: null } });

    const again = recordedClient();
    expect(await again.client.workflow("t-1", steps)).toEqual(result);
    expect(again.sent.map((r) => `${r.method} ${r.path}`)).toEqual([`POST /v1/entities/${WORKFLOW_TYPE}/t-1/ops`]);
    expect(await db.get("account", "a-1")).toMatchObject({ version: 2 });
  });

  it("compensates the first step when the second fails for good, and a re-run changes nothing", async () => {
    await openAccounts({ "a-2": { balance: 50 }, "b-2": { balance: 0, frozen: true } });
    const steps = transferSteps("t-2", "a-2", "b-2", 20);
    const error = await rejectionOf(db.workflow("t-2", steps));
    expect(error).toBeInstanceOf(WorkflowError);
    expect(error).toMatchObject({ workflowId: "t-2", failedStep: "credit", status: "compensated" });
    const cause = (error as WorkflowError).cause;
    expect(cause).toBeInstanceOf(ConditionFailedError);
    expect((cause as ConditionFailedError).failed).toMatchObject({ path: "/frozen", op: "ne" });

    const source = await db.get("account", "a-2");
    expect(source).toMatchObject({ version: 3, data: { balance: 50 } });
    expect(logOf(source.data)).toEqual([
      { transfer: "t-2", amount: -20 },
      { transfer: "t-2", amount: 20, refund: true },
    ]);

    // Even once the credit could succeed, the recorded outcome stands.
    await db.patch("account", "b-2", { frozen: false });
    const again = recordedClient();
    const repeated = await rejectionOf(again.client.workflow("t-2", steps));
    expect(repeated).toBeInstanceOf(WorkflowError);
    expect(repeated).toMatchObject({ failedStep: "credit", status: "compensated", message: (error as Error).message });
    expect((repeated as WorkflowError).cause).toBeInstanceOf(ConditionFailedError);
    expect(again.sent).toHaveLength(1);
    expect(await db.get("account", "a-2")).toEqual(source);
    expect(await db.get("account", "b-2")).toMatchObject({ version: 2, data: { balance: 0 } });
  });

  it("fails on the first step without compensating anything", async () => {
    await openAccounts({ "a-3": { balance: 5 }, "b-3": { balance: 0 } });
    const { fetch, sent } = recordingFetch();
    const error = await rejectionOf(createClient({ baseUrl, fetch }).workflow("t-3", transferSteps("t-3", "a-3", "b-3", 10)));
    expect(error).toMatchObject({ failedStep: "debit", status: "compensated" });
    expect(sent.filter((r) => r.path.startsWith("/v1/entities/account/")).map((r) => r.idempotencyKey)).toEqual(["wf/t-3/debit"]);
    expect(await db.get("account", "a-3")).toMatchObject({ version: 1 });
  });

  it("replays a step that was applied before a crash instead of applying it again", async () => {
    await openAccounts({ "a-4": { balance: 100 }, "b-4": { balance: 0 } });
    const steps = transferSteps("t-4", "a-4", "b-4", 40);
    expect(await rejectionOf(crashingClient("wf/t-4/debit", "after").workflow("t-4", steps))).toBeInstanceOf(NetworkError);
    expect(await db.get(WORKFLOW_TYPE, "t-4")).toMatchObject({ data: { status: "running" } });

    expect(await db.workflow("t-4", steps)).toMatchObject({ status: "completed" });
    const source = await db.get("account", "a-4");
    expect(source.data.balance).toBe(60);
    expect(logOf(source.data)).toEqual([{ transfer: "t-4", amount: -40 }]);
    expect(await db.get("account", "b-4")).toMatchObject({ data: { balance: 40 } });
  });

  it("keeps a recorded failure final after a crash, even when the failed step would now succeed", async () => {
    await openAccounts({ "a-5": { balance: 100 }, "b-5": { balance: 0, frozen: true } });
    const steps = transferSteps("t-5", "a-5", "b-5", 25);
    const crashed = await rejectionOf(crashingClient("wf/t-5/debit/compensate", "before").workflow("t-5", steps));
    expect(crashed).toBeInstanceOf(NetworkError);
    expect(await db.get(WORKFLOW_TYPE, "t-5")).toMatchObject({ data: { status: "compensating", failedStep: "credit" } });

    await db.patch("account", "b-5", { frozen: false });
    const { fetch, sent } = recordingFetch();
    const error = await rejectionOf(createClient({ baseUrl, fetch }).workflow("t-5", steps));
    expect(error).toMatchObject({ failedStep: "credit", status: "compensated" });
    expect(sent.map((r) => r.idempotencyKey)).not.toContain("wf/t-5/credit");
    expect(await db.get("account", "a-5")).toMatchObject({ data: { balance: 100 } });
    expect(await db.get("account", "b-5")).toMatchObject({ data: { balance: 0 } });
  });

  it("replays a compensation that was applied before a crash", async () => {
    await openAccounts({ "a-6": { balance: 100 }, "b-6": { balance: 0, frozen: true } });
    const steps = transferSteps("t-6", "a-6", "b-6", 10);
    await rejectionOf(crashingClient("wf/t-6/debit/compensate", "after").workflow("t-6", steps));
    expect(await rejectionOf(db.workflow("t-6", steps))).toBeInstanceOf(WorkflowError);
    const source = await db.get("account", "a-6");
    expect(source.data.balance).toBe(100);
    expect(logOf(source.data)).toEqual([
      { transfer: "t-6", amount: -10 },
      { transfer: "t-6", amount: 10, refund: true },
    ]);
  });

  it("never takes a refused progress write for a failed step", async () => {
    await openAccounts({ "a-9": { balance: 100 }, "b-9": { balance: 0 } });
    const steps = transferSteps("t-9", "a-9", "b-9", 15);
    // Requests: 0 begins, 1 is the debit, 2 records it; that record is refused.
    const { client } = recordedClient((_request, index) => (index === 2 ? problemResponse(400, "invalid-body") : undefined));
    const error = await rejectionOf(client.workflow("t-9", steps));
    expect(error).not.toBeInstanceOf(WorkflowError);
    expect(error).toMatchObject({ status: 400, code: "invalid-body" });
    expect(await db.get(WORKFLOW_TYPE, "t-9")).toMatchObject({ data: { status: "running" } });

    expect(await db.workflow("t-9", steps)).toMatchObject({ status: "completed" });
    expect(logOf((await db.get("account", "a-9")).data)).toEqual([{ transfer: "t-9", amount: -15 }]);
  });

  it("refuses to run an id again with other steps, sending nothing but the progress check", async () => {
    await openAccounts({ "a-7": { balance: 100 }, "b-7": { balance: 0 } });
    await db.workflow("t-7", transferSteps("t-7", "a-7", "b-7", 10));
    const { client, sent } = recordedClient();
    const error = await rejectionOf(client.workflow("t-7", transferSteps("t-7", "a-7", "b-7", 99)));
    expect(error).toBeInstanceOf(WorkflowDefinitionError);
    expect(sent).toHaveLength(1);
    expect(await db.get("account", "a-7")).toMatchObject({ data: { balance: 90 } });
  });

  it.each([
    ["no steps", []],
    ["a duplicate name", [...transferSteps("x", "a", "b", 1), ...transferSteps("x", "a", "b", 1)]],
    ["a name with a slash", [{ name: "a/b", type: "account", id: "a", ops: { do: [] } }]],
    ["a step on the progress entities", [{ name: "sneaky", type: WORKFLOW_TYPE, id: "x", ops: { do: [] } }]],
  ])("rejects %s before sending anything", async (_name, steps) => {
    const { fetch, sent } = recordingFetch();
    expect(await rejectionOf(createClient({ baseUrl, fetch }).workflow("t-bad", steps))).toBeInstanceOf(TypeError);
    expect(sent).toHaveLength(0);
  });

  it("hashes a derived key that would pass 255 characters", async () => {
    const id = "w".repeat(250);
    await openAccounts({ "a-8": { balance: 10 } });
    const { fetch, sent } = recordingFetch();
    const steps = [
      { name: "touch", type: "account", id: "a-8", ops: { do: [{ op: "inc" as const, path: "/touched", value: 1 }] } },
    ];
    await createClient({ baseUrl, fetch }).workflow(id, steps);
    const key = sent.find((r) => r.path === "/v1/entities/account/a-8/ops")?.idempotencyKey;
    expect(key).toMatch(/^wf-sha256\/[0-9a-f]{64}$/);
  });
});
