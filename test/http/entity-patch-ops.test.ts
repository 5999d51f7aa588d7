import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectProblem } from "../support/problem.js";
import { createTestApp, type TestApp } from "../support/test-app.js";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

const MERGE = "application/merge-patch+json";
const JSON_PATCH = "application/json-patch+json";

async function seed(id: string, data: object): Promise<void> {
  expect((await request(t.app).put(`/v1/entities/acct/${id}`).send(data)).status).toBe(201);
}
const read = async (id: string) => (await request(t.app).get(`/v1/entities/acct/${id}`)).body;
const patch = (id: string, type: string, body: unknown) =>
  request(t.app).patch(`/v1/entities/acct/${id}`).set("Content-Type", type).send(JSON.stringify(body));
const ops = (id: string, body: unknown) =>
  request(t.app)
    .post(`/v1/entities/acct/${id}/ops`)
    .send(body as object);

describe("PATCH", () => {
  it("applies a merge patch (RFC 7396): null removes, objects merge, arrays replace", async () => {
    await seed("m1", { a: 1, b: { c: 2, d: 3 }, list: [1, 2] });
    const res = await patch("m1", MERGE, { a: null, b: { d: 4 }, list: [9] });
    expect(res.status).toBe(200);
    expect(res.headers.etag).toBe('"2"');
    expect(res.body).toMatchObject({ version: 2, data: { b: { c: 2, d: 4 }, list: [9] } });
  });

  it("applies a JSON Patch (RFC 6902) all or nothing", async () => {
    await seed("j1", { a: 1, list: [1] });
    const ok = await patch("j1", JSON_PATCH, [
      { op: "add", path: "/list/-", value: 2 },
      { op: "replace", path: "/a", value: 5 },
      { op: "copy", from: "/a", path: "/b" },
    ]);
    expect(ok.status).toBe(200);
    expect(ok.body.data).toEqual({ a: 5, b: 5, list: [1, 2] });

    const failed = await patch("j1", JSON_PATCH, [
      { op: "replace", path: "/a", value: 100 },
      { op: "remove", path: "/missing" },
    ]);
    expectProblem(failed, 409, "patch-conflict");
    expect(failed.body.current).toMatchObject({ version: 2, data: { a: 5 } });
    expect(await read("j1")).toMatchObject({ version: 2, data: { a: 5, b: 5, list: [1, 2] } });
  });

  it("answers a failed test with 409 test-failed and the current entity", async () => {
    await seed("j2", { state: "open" });
    const res = await patch("j2", JSON_PATCH, [
      { op: "test", path: "/state", value: "closed" },
      { op: "replace", path: "/state", value: "archived" },
    ]);
    expectProblem(res, 409, "test-failed");
    expect(res.body.current).toMatchObject({ version: 1, data: { state: "open" } });
    expect((await read("j2")).data).toEqual({ state: "open" });
  });

  it("refuses a patch whose result is not an object", async () => {
    await seed("j3", { a: 1 });
    expectProblem(await patch("j3", JSON_PATCH, [{ op: "replace", path: "", value: 5 }]), 409, "patch-conflict");
  });

  it("is 404 on an absent entity, 412 with current: null when If-Match is given", async () => {
    expectProblem(await patch("nobody", MERGE, { a: 1 }), 404, "entity-not-found");
    const res = await request(t.app)
      .patch("/v1/entities/acct/nobody")
      .set("Content-Type", MERGE)
      .set("If-Match", '"1"')
      .send("{}");
    expectProblem(res, 412, "version-mismatch");
    expect(res.body.current).toBeNull();
  });

  it("honours If-Match", async () => {
    await seed("pim", { a: 1 });
    const stale = await request(t.app)
      .patch("/v1/entities/acct/pim")
      .set("Content-Type", MERGE)
      .set("If-Match", '"2"')
      .send('{"a":2}');
    expectProblem(stale, 412, "version-mismatch");
    const ok = await request(t.app)
      .patch("/v1/entities/acct/pim")
      .set("Content-Type", MERGE)
      .set("If-Match", '"1"')
      .send('{"a":2}');
    expect(ok.status).toBe(200);
  });

  it.each([
    ["application/json", 415, "unsupported-media-type"],
    ["text/plain", 415, "unsupported-media-type"],
  ])("refuses Content-Type %s", async (type, status, code) => {
    await seed(`ct-${status}-${type.length}`, { a: 1 });
    expectProblem(await patch(`ct-${status}-${type.length}`, type, { a: 2 }), status, code);
  });

  it.each([
    ["an unknown op", [{ op: "bogus", path: "/a" }]],
    ["a missing value", [{ op: "add", path: "/a" }]],
    ["a pointer without a leading slash", [{ op: "add", path: "a", value: 1 }]],
    ["a __proto__ segment", [{ op: "add", path: "/__proto__/polluted", value: 1 }]],
    ["a non-array body", { op: "add", path: "/a", value: 1 }],
  ])("refuses a JSON Patch with %s as invalid-body", async (_name, body) => {
    await seed(`bad-${_name.length}`, { a: 1 });
    expectProblem(await patch(`bad-${_name.length}`, JSON_PATCH, body), 400, "invalid-body");
    expect(await read(`bad-${_name.length}`)).toMatchObject({ version: 1, data: { a: 1 } });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe("POST .../ops", () => {
  it("debits only when the balance suffices (conditions checked, operations applied atomically)", async () => {
    await seed("o1", { balance: 15 });
    const debit = { if: [{ path: "/balance", op: "gte", value: 10 }], do: [{ op: "inc", path: "/balance", value: -10 }] };
    const first = await ops("o1", debit);
    expect(first.status).toBe(200);
    expect(first.headers.etag).toBe('"2"');
    expect(first.body).toMatchObject({ version: 2, data: { balance: 5 } });

    const second = await ops("o1", debit);
    expectProblem(second, 409, "condition-failed");
    expect(second.body.failed).toEqual({ index: 0, path: "/balance", op: "gte", value: 10 });
    expect(second.body.current).toMatchObject({ version: 2, data: { balance: 5 } });
  });

  it("applies set, remove, inc and append together, creating missing parents", async () => {
    await seed("o2", { hold: true, n: 1 });
    const res = await ops("o2", {
      if: [
        { path: "/hold", op: "exists" },
        { path: "/closed", op: "absent" },
        { path: "/n", op: "ne", value: 2 },
      ],
      do: [
        { op: "set", path: "/status/state", value: "open" },
        { op: "remove", path: "/hold" },
        { op: "inc", path: "/n", value: 2 },
        { op: "inc", path: "/fresh", value: 3 },
        { op: "append", path: "/history", value: { at: 1 } },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual({ n: 3, fresh: 3, status: { state: "open" }, history: [{ at: 1 }] });
  });

  it("creates with upsert (201, conditions against {}), and is 404 without it", async () => {
    expectProblem(await ops("o3", { do: [{ op: "set", path: "/a", value: 1 }] }), 404, "entity-not-found");
    const created = await ops("o3", {
      if: [{ path: "/a", op: "absent" }],
      do: [{ op: "set", path: "/a", value: 1 }],
      upsert: true,
    });
    expect(created.status).toBe(201);
    expect(created.headers.location).toBe("/v1/entities/acct/o3");
    expect(created.body).toMatchObject({ version: 1, data: { a: 1 } });
  });

  it.each([
    ["inc on a string", { s: "x" }, { op: "inc", path: "/s", value: 1 }],
    ["append to an object", { o: {} }, { op: "append", path: "/o", value: 1 }],
    ["a path through a scalar", { n: 1 }, { op: "set", path: "/n/x", value: 1 }],
    ["a result beyond 2^53", { n: 2 ** 53 - 1 }, { op: "inc", path: "/n", value: 10 }],
  ])("answers %s with 409 patch-conflict and changes nothing", async (name, data, operation) => {
    const id = `pc-${name.length}`;
    await seed(id, data);
    const res = await ops(id, { do: [{ op: "set", path: "/touched", value: true }, operation] });
    expectProblem(res, 409, "patch-conflict");
    expect(res.body.current).toMatchObject({ version: 1, data });
    expect(await read(id)).toMatchObject({ version: 1, data });
  });

  it.each([
    ["an unknown condition", { if: [{ path: "/a", op: "like", value: 1 }], do: [] }],
    ["a missing do", { if: [] }],
    ["an unknown member", { do: [], extra: 1 }],
    ["inc with a string value", { do: [{ op: "inc", path: "/a", value: "1" }] }],
    ["a __proto__ path", { do: [{ op: "set", path: "/__proto__/x", value: 1 }] }],
  ])("refuses %s as invalid-body", async (_name, body) => {
    await seed(`ib-${_name.length}`, { a: 1 });
    expectProblem(await ops(`ib-${_name.length}`, body), 400, "invalid-body");
    expect(await read(`ib-${_name.length}`)).toMatchObject({ version: 1 });
  });
});
