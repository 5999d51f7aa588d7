import { expect } from "vitest";
import { bodyOf, jsonRequest, send, type Reply, type SendOptions } from "./http.js";

/*
 * A load whose every write is recognisable afterwards: each request appends its own op id to
 * the entity's `log` and adds 1 to `n`, under an Idempotency-Key equal to that op id. After a
 * crash, re-sending a request tells whether it had committed (replayed) or not (applied now),
 * and the logs show whether anything was lost or applied twice.
 */

/*
 * A request handed by the cluster's primary to a worker that is killed at that instant is never
 * answered nor closed (Node's round-robin handoff keeps the socket; nodejs/node#21746 is the same
 * family). Clients must time out and retry, as the typed client does; so does this load.
 */
const REQUEST_TIMEOUT_MS = 10_000;

export interface AppendOp {
  type: string;
  id: string;
  opId: string;
  /** The answer, when one arrived: the write was acknowledged iff it is a 2xx. */
  reply?: Reply;
}

interface EntityHistory {
  version: number;
  log: string[];
  n: number;
}

function appendRequest(opId: string): SendOptions {
  const request = jsonRequest({
    do: [
      { op: "append", path: "/log", value: opId },
      { op: "inc", path: "/n", value: 1 },
    ],
    upsert: true,
  });
  return { ...request, headers: { ...request.headers, "idempotency-key": opId } };
}

function sendAppend(baseUrl: string, op: AppendOp, timeoutMs?: number): Promise<Reply> {
  return send(baseUrl, "POST", `/v1/entities/${op.type}/${op.id}/ops`, {
    ...appendRequest(op.opId),
    ...(timeoutMs !== undefined && { timeoutMs }),
  });
}

export const acknowledged = (op: AppendOp): boolean => op.reply !== undefined && op.reply.status >= 200 && op.reply.status < 300;

/**
 * Runs `clients` loops of appends on `ids` until `stop()` says so, adding every op it sends to
 * `ops` (answered or not). On a connection error a loop ends (the server is gone), or with
 * `retry` sends the same op again, as a client that retries with its idempotency key does.
 */
export async function runAppendLoad(
  baseUrl: string,
  ops: AppendOp[],
  options: { type: string; ids: readonly string[]; clients: number; prefix: string; stop: () => boolean; retry?: boolean },
): Promise<void> {
  await Promise.all(
    Array.from({ length: options.clients }, async (_, client) => {
      for (let seq = 0; !options.stop(); seq++) {
        const op: AppendOp = {
          type: options.type,
          id: options.ids[(client + seq * 7) % options.ids.length]!,
          opId: `${options.prefix}-c${client}-${seq}`,
        };
        ops.push(op);
        for (;;) {
          try {
            op.reply = await sendAppend(baseUrl, op, REQUEST_TIMEOUT_MS);
            break;
          } catch {
            // Unanswered: `settle` re-sends it later with the same key.
            if (!options.retry || options.stop()) return;
          }
        }
      }
    }),
  );
}

async function readHistory(baseUrl: string, type: string, id: string): Promise<EntityHistory | undefined> {
  const reply = await send(baseUrl, "GET", `/v1/entities/${type}/${id}`);
  if (reply.status === 404) return undefined;
  expect(reply.status, reply.text).toBe(200);
  const body = bodyOf(reply) as { version: number; data: { log: string[]; n: number } };
  return { version: body.version, log: body.data.log, n: body.data.n };
}

/**
 * Every acknowledged op is in its entity's log at its acknowledged version, and re-sending it
 * is a replay of the very same answer. Every other op is then re-sent until served, which
 * either replays it (it had committed before the crash) or applies it now.
 */
export async function settle(baseUrl: string, ops: readonly AppendOp[]): Promise<void> {
  const histories = new Map<string, EntityHistory | undefined>();
  for (const op of ops.filter(acknowledged)) {
    const key = `${op.type}/${op.id}`;
    if (!histories.has(key)) histories.set(key, await readHistory(baseUrl, op.type, op.id));
    const history = histories.get(key);
    const acked = bodyOf(op.reply!) as { version: number };
    expect(history, `${op.opId} was acknowledged`).toBeDefined();
    expect(history!.log[acked.version - 1], `${op.opId} holds its acknowledged place`).toBe(op.opId);
    const again = await sendAppend(baseUrl, op);
    expect({ status: again.status, text: again.text, replayed: again.headers["idempotent-replayed"] }).toEqual({
      status: op.reply!.status,
      text: op.reply!.text,
      replayed: "true",
    });
  }
  for (const op of ops.filter((op) => !acknowledged(op))) {
    let again = await sendAppend(baseUrl, op);
    while (again.status === 503) again = await sendAppend(baseUrl, op);
    expect([200, 201], again.text).toContain(again.status);
  }
}

/** After `settle`, each entity's log holds each op exactly once, and nothing else. */
export async function expectExactlyOnce(
  baseUrl: string,
  type: string,
  ids: readonly string[],
  ops: readonly AppendOp[],
): Promise<void> {
  for (const id of ids) {
    const expected = ops.filter((op) => op.id === id).map((op) => op.opId);
    const history = await readHistory(baseUrl, type, id);
    const log = history?.log ?? [];
    expect([...log].sort(), `${type}/${id}: every op exactly once`).toEqual([...expected].sort());
    if (history) expect({ version: history.version, n: history.n }).toEqual({ version: log.length, n: log.length });
  }
}
