import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTempServer, type ServerProcess } from "../support/server-process.js";
import { bodyOf, jsonRequest, send, type Reply, type SendOptions } from "../support/http.js";
import { listAll } from "../support/list.js";
import { propertyParameters, setting } from "../support/settings.js";

/*
 * Several clients at once on a few keys, through both workers. Every write appends its own op
 * id to the entity's `log` and adds 1 to `n`, so the final state says which writes took effect
 * and in which order. The history is serialisable per entity when the final version equals the
 * number of acknowledged writes, and the write acknowledged with version v is the v-th entry of
 * the log and saw exactly the log's first v entries: no lost update, nothing applied twice.
 */

let server: ServerProcess;
let stop: () => Promise<void>;
beforeAll(async () => {
  ({ server, stop } = await startTempServer({ workers: 2 }));
});
afterAll(() => stop?.());

interface History {
  log: string[];
  n: number;
}

interface Acknowledged {
  id: string;
  opId: string;
  version: number;
  log: string[];
}

type How = "ops" | "retried-ops" | "racing-duplicates" | "read-modify-write";
const step = fc.record({
  entity: fc.integer({ min: 0, max: 2 }),
  how: fc.constantFrom<How>("ops", "retried-ops", "racing-duplicates", "read-modify-write"),
});

/** Sends until the answer is not a 503; a 503 must carry Retry-After and commit nothing. */
async function sendUntilServed(path: string, method: string, options: SendOptions): Promise<Reply> {
  for (;;) {
    const reply = await send(server.url, method, path, options);
    if (reply.status !== 503) return reply;
    expect(reply.headers["retry-after"]).toBeDefined();
  }
}

function appendOps(opId: string): SendOptions {
  const request = jsonRequest({
    do: [
      { op: "append", path: "/log", value: opId },
      { op: "inc", path: "/n", value: 1 },
    ],
    upsert: true,
  });
  return { ...request, headers: { ...request.headers, "idempotency-key": opId } };
}

function acknowledged(id: string, opId: string, reply: Reply): Acknowledged {
  expect([200, 201], reply.text).toContain(reply.status);
  const body = bodyOf(reply) as { version: number; data: History };
  return { id, opId, version: body.version, log: body.data.log };
}

async function runStep(type: string, id: string, opId: string, how: How): Promise<Acknowledged | undefined> {
  const path = `/v1/entities/${type}/${id}`;
  switch (how) {
    case "ops":
      return acknowledged(id, opId, await sendUntilServed(`${path}/ops`, "POST", appendOps(opId)));
    case "retried-ops": {
      const first = await sendUntilServed(`${path}/ops`, "POST", appendOps(opId));
      const retry = await sendUntilServed(`${path}/ops`, "POST", appendOps(opId));
      expect({ status: retry.status, text: retry.text, replayed: retry.headers["idempotent-replayed"] }).toEqual({
        status: first.status,
        text: first.text,
        replayed: "true",
      });
      return acknowledged(id, opId, first);
    }
    case "racing-duplicates": {
      const replies = await Promise.all([0, 1].map(() => sendUntilServed(`${path}/ops`, "POST", appendOps(opId))));
      expect(replies[0]!.text).toBe(replies[1]!.text);
      const applied = replies.filter((reply) => reply.headers["idempotent-replayed"] === undefined);
      expect(applied, "exactly one of two concurrent duplicates applies").toHaveLength(1);
      return acknowledged(id, opId, applied[0]!);
    }
    case "read-modify-write":
      // Optimistic concurrency: read, write with If-Match, re-read on 412; a few tries, then give up.
      for (let attempt = 0; attempt < 5; attempt++) {
        const read = await sendUntilServed(path, "GET", {});
        const current =
          read.status === 404 ? { version: 0, data: { log: [], n: 0 } } : (bodyOf(read) as { version: number; data: History });
        const next: History = { log: [...current.data.log, opId], n: current.data.n + 1 };
        const precondition: Record<string, string> =
          read.status === 404 ? { "if-none-match": "*" } : { "if-match": `"${current.version}"` };
        const request = jsonRequest(next);
        const write = await sendUntilServed(path, "PUT", { ...request, headers: { ...request.headers, ...precondition } });
        if (write.status === 412) continue;
        return acknowledged(id, opId, write);
      }
      return undefined;
  }
}

let runs = 0;

it(
  "concurrent clients on a few keys leave a serialisable history per entity",
  async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(step, { minLength: 1, maxLength: 12 }), { minLength: 2, maxLength: 5 }),
        async (clients) => {
          runs += 1;
          const type = `concurrent-${runs}`;
          const ids = ["x", "y", "z"];
          const perClient = await Promise.all(
            clients.map(async (steps, client) => {
              const done: Acknowledged[] = [];
              for (const [index, { entity, how }] of steps.entries()) {
                const ack = await runStep(type, ids[entity]!, `c${client}-${index}`, how);
                if (ack) done.push(ack);
              }
              return done;
            }),
          );
          for (const id of ids) {
            const writes = perClient.flat().filter((ack) => ack.id === id);
            const reply = await send(server.url, "GET", `/v1/entities/${type}/${id}`);
            if (writes.length === 0) {
              expect(reply.status).toBe(404);
              continue;
            }
            const final = bodyOf(reply) as { version: number; data: History };
            expect(final.version, `${id}: one version per acknowledged write`).toBe(writes.length);
            expect(final.data.n).toBe(writes.length);
            expect([...final.data.log].sort()).toEqual(writes.map((write) => write.opId).sort());
            for (const write of writes) {
              expect(write.log, `${write.opId} saw the history before it`).toEqual(final.data.log.slice(0, write.version));
            }
          }
          for (const done of perClient) {
            for (const id of ids) {
              const versions = done.filter((ack) => ack.id === id).map((ack) => ack.version);
              expect(versions, "one client's writes apply in its order").toEqual([...versions].sort((a, b) => a - b));
            }
          }
        },
      ),
      propertyParameters(8),
    );
  },
  setting(100_000, 1_200_000),
);

it(
  "paging while other clients create, update and delete lists every lasting entity once, in order",
  async () => {
    const type = "paging";
    const stable = Array.from({ length: 40 }, (_, i) => `s${String(i).padStart(3, "0")}`);
    const churn = Array.from({ length: 40 }, (_, i) => `c${String(i).padStart(3, "0")}`);
    for (const id of stable)
      expect((await send(server.url, "PUT", `/v1/entities/${type}/${id}`, jsonRequest({ n: 0 }))).status).toBe(201);
    let stopped = false;
    const writers = Array.from({ length: 3 }, async (_, writer) => {
      for (let i = writer; !stopped; i += 3) {
        const churned = `/v1/entities/${type}/${churn[i % churn.length]}`;
        await send(server.url, i % 2 === 0 ? "PUT" : "DELETE", churned, i % 2 === 0 ? jsonRequest({ i }) : {});
        await send(server.url, "PUT", `/v1/entities/${type}/${stable[i % stable.length]}`, jsonRequest({ n: i }));
      }
    });
    try {
      for (let listing = 0; listing < setting(6, 60); listing++) {
        const limit = 1 + (listing % 5);
        const ids = (await listAll(server.url, type, "", limit)).map((item) => item.id);
        const ordered = ids.every((id, i) => i === 0 || Buffer.compare(Buffer.from(ids[i - 1]!), Buffer.from(id)) < 0);
        expect(ordered, `listing with limit ${limit} is strictly ordered (no repeats): ${ids.join(" ")}`).toBe(true);
        expect(ids.filter((id) => id.startsWith("s"))).toEqual(stable);
        expect(ids.every((id) => stable.includes(id) || churn.includes(id))).toBe(true);
      }
    } finally {
      stopped = true;
      await Promise.all(writers);
    }
  },
  setting(60_000, 600_000),
);
