import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTempServer, type ServerProcess } from "../support/server-process.js";

let server: ServerProcess;
let stop: () => Promise<void>;
beforeAll(async () => {
  ({ server, stop } = await startTempServer({ workers: 2 }));
});
afterAll(() => stop?.());

/*
 * Requests go out on separate connections (no keep-alive agent), so the cluster spreads them
 * over both workers: the guarantees below must hold between processes, not only within one.
 */
async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", connection: "close", ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, replayed: res.headers.get("idempotent-replayed"), text: await res.text() };
}

describe("two workers, one data directory", () => {
  it("applies 50 concurrent requests with one Idempotency-Key exactly once", async () => {
    const body = { do: [{ op: "inc", path: "/n", value: 1 }], upsert: true };
    const results = await Promise.all(
      Array.from({ length: 50 }, () => post("/v1/entities/counter/once/ops", body, { "idempotency-key": "the-key" })),
    );
    expect(results.every((r) => r.status === 201)).toBe(true);
    expect(results.filter((r) => r.replayed === null)).toHaveLength(1);
    expect(new Set(results.map((r) => r.text)).size).toBe(1);
    const entity = await (await fetch(`${server.url}/v1/entities/counter/once`)).json();
    expect(entity).toMatchObject({ version: 1, data: { n: 1 } });
  });

  it("ends 200 concurrent inc ops on one entity at exactly 200", async () => {
    const body = { do: [{ op: "inc", path: "/n", value: 1 }], upsert: true };
    const results = await Promise.all(Array.from({ length: 200 }, () => post("/v1/entities/counter/hot/ops", body)));
    expect(results.map((r) => r.status).filter((s) => s !== 200 && s !== 201)).toEqual([]);
    const entity = await (await fetch(`${server.url}/v1/entities/counter/hot`)).json();
    expect(entity).toMatchObject({ version: 200, data: { n: 200 } });
  });
});
