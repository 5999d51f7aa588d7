import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answerOf } from "../support/answer.js";
import { expectProblem } from "../support/problem.js";
import { createTestApp, type TestApp } from "../support/test-app.js";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

const inc = { do: [{ op: "inc", path: "/n", value: 1 }], upsert: true };
const opsWithKey = (id: string, key: string, body: object = inc) =>
  request(t.app).post(`/v1/entities/counter/${id}/ops`).set("Idempotency-Key", key).send(body);
const read = async (id: string) => (await request(t.app).get(`/v1/entities/counter/${id}`)).body;

describe("Idempotency-Key", () => {
  it("replays the identical response with Idempotent-Replayed and does not apply again", async () => {
    const first = await opsWithKey("c1", "key-1");
    expect(first.status).toBe(201);
    expect(first.headers["idempotent-replayed"]).toBeUndefined();
    const replay = await opsWithKey("c1", "key-1");
    expect(replay.status).toBe(201);
    expect(replay.headers["idempotent-replayed"]).toBe("true");
    expect(replay.headers.etag).toBe(first.headers.etag);
    expect(replay.headers.location).toBe(first.headers.location);
    expect(replay.text).toBe(first.text);
    expect(await read("c1")).toMatchObject({ version: 1, data: { n: 1 } });
  });

  it("replays the original response even after the entity changed since", async () => {
    const first = await opsWithKey("c2", "k");
    await opsWithKey("c2", "other-key");
    await request(t.app).put("/v1/entities/counter/c2").send({ n: 100 });
    const replay = await opsWithKey("c2", "k");
    expect(replay.headers["idempotent-replayed"]).toBe("true");
    expect(replay.text).toBe(first.text);
    expect(replay.body).toMatchObject({ version: 1, data: { n: 1 } });
    expect(await read("c2")).toMatchObject({ version: 3, data: { n: 100 } });
  });

  /*
   * Each case: a keyed request, what happens to the entity after it, and the same request
   * again. The replay gives back the first answer (status, every header, the body's bytes)
   * whatever the entity has become; only `Idempotent-Replayed` is added.
   */
  const put = (id: string, key: string, body: object) =>
    request(t.app).put(`/v1/entities/counter/${id}`).set("Idempotency-Key", key).send(body);
  const del = (id: string, key: string) => request(t.app).delete(`/v1/entities/counter/${id}`).set("Idempotency-Key", key);
  const nothing = async () => undefined;
  it.each([
    {
      name: "a create (201) after a later update",
      id: "r1",
      before: nothing,
      keyed: () => put("r1", "create", { n: 1 }),
      after: () => put("r1", "other", { n: 2 }),
      want: { status: 201, etag: '"1"', location: "/v1/entities/counter/r1" },
    },
    {
      name: "an ops upsert that created (201) after a later delete",
      id: "r2",
      before: nothing,
      keyed: () => opsWithKey("r2", "upsert"),
      after: () => del("r2", "gone"),
      want: { status: 201, etag: '"1"', location: "/v1/entities/counter/r2" },
    },
    {
      name: "an update (200) after a delete and a re-creation",
      id: "r3",
      before: () => put("r3", "first", { n: 1 }),
      keyed: () => put("r3", "update", { n: 2 }),
      after: async () => {
        await del("r3", "gone");
        await put("r3", "again", { n: 3 });
      },
      want: { status: 200, etag: '"2"', location: undefined },
    },
    {
      name: "a delete (204) after a re-creation",
      id: "r4",
      before: () => put("r4", "first", { n: 1 }),
      keyed: () => del("r4", "delete"),
      after: () => put("r4", "again", { n: 2 }),
      want: { status: 204, etag: undefined, location: undefined },
    },
  ])("replays $name byte for byte", async ({ id, before, keyed, after, want }) => {
    await before();
    const first = await keyed();
    expect({ status: first.status, etag: first.headers.etag, location: first.headers.location }).toEqual(want);
    expect(first.headers["idempotent-replayed"]).toBeUndefined();

    await after();
    const current = await request(t.app).get(`/v1/entities/counter/${id}`);
    expect(current.text).not.toBe(first.text);

    const replay = await keyed();
    expect(replay.headers["idempotent-replayed"]).toBe("true");
    expect(answerOf(replay)).toEqual(answerOf(first));
    // Nothing was applied again.
    expect((await request(t.app).get(`/v1/entities/counter/${id}`)).text).toBe(current.text);
  });

  it("answers the same key with another body with 422 and changes nothing", async () => {
    await opsWithKey("c3", "k");
    const reused = await opsWithKey("c3", "k", { do: [{ op: "inc", path: "/n", value: 5 }] });
    expectProblem(reused, 422, "idempotency-key-reused");
    expect(await read("c3")).toMatchObject({ version: 1, data: { n: 1 } });
  });

  it.each([
    ["another method", () => request(t.app).put("/v1/entities/counter/c4").set("Idempotency-Key", "k").send({ n: 0 })],
    [
      "another If-Match",
      () => request(t.app).post("/v1/entities/counter/c4/ops").set("Idempotency-Key", "k").set("If-Match", '"1"').send(inc),
    ],
  ])("counts %s as another fingerprint", async (_name, send) => {
    await opsWithKey("c4", "k");
    expectProblem(await send(), 422, "idempotency-key-reused");
  });

  it("scopes keys to the entity", async () => {
    await opsWithKey("c5", "shared");
    const other = await opsWithKey("c6", "shared");
    expect(other.status).toBe(201);
    expect(other.headers["idempotent-replayed"]).toBeUndefined();
  });

  it("records nothing for a failed request, so it can be retried", async () => {
    const debit = { if: [{ path: "/n", op: "gte", value: 1 }], do: [{ op: "inc", path: "/n", value: -1 }], upsert: true };
    expectProblem(await opsWithKey("c7", "retry-me", debit), 409, "condition-failed");
    await opsWithKey("c7", "fund");
    const retried = await opsWithKey("c7", "retry-me", debit);
    expect(retried.status).toBe(200);
    expect(retried.headers["idempotent-replayed"]).toBeUndefined();
    expect(retried.body).toMatchObject({ version: 2, data: { n: 0 } });
  });

  it("replays PUT, PATCH and DELETE, DELETE as 204 with no body", async () => {
    const put = () => request(t.app).put("/v1/entities/counter/c8").set("Idempotency-Key", "p").send({ a: 1 });
    expect((await put()).status).toBe(201);
    const putReplay = await put();
    expect([putReplay.status, putReplay.headers["idempotent-replayed"]]).toEqual([201, "true"]);

    const patch = () =>
      request(t.app)
        .patch("/v1/entities/counter/c8")
        .set("Idempotency-Key", "m")
        .set("Content-Type", "application/merge-patch+json")
        .send('{"b":2}');
    expect((await patch()).body.version).toBe(2);
    const patchReplay = await patch();
    expect([patchReplay.status, patchReplay.headers["idempotent-replayed"], patchReplay.body.version]).toEqual([200, "true", 2]);

    const del = () => request(t.app).delete("/v1/entities/counter/c8").set("Idempotency-Key", "d");
    expect((await del()).status).toBe(204);
    const delReplay = await del();
    expect([delReplay.status, delReplay.headers["idempotent-replayed"], delReplay.text]).toEqual([204, "true", ""]);
  });

  it.each([
    ["too long", "x".repeat(256)],
    ["non-printable", "tab\there"],
    ["non-ASCII", "clé"],
  ])("refuses a key that is %s with 400 invalid-idempotency-key", async (_name, key) => {
    const res = await request(t.app).post("/v1/entities/counter/c9/ops").set("Idempotency-Key", key).send(inc);
    expectProblem(res, 400, "invalid-idempotency-key");
    expectProblem(await request(t.app).get("/v1/entities/counter/c9"), 404, "entity-not-found");
  });

  it("refuses an empty key", async () => {
    const res = await request(t.app).post("/v1/entities/counter/c10/ops").set("Idempotency-Key", "").send(inc);
    expectProblem(res, 400, "invalid-idempotency-key");
  });
});
