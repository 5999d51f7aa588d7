import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectProblem } from "../support/problem.js";
import { createTestApp, type TestApp } from "../support/test-app.js";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ bodyLimit: 64 * 1024 });
  await request(t.app).put("/v1/entities/doc/kept").send({ original: true });
});
afterAll(() => t.close());

const unchanged = async () => {
  const res = await request(t.app).get("/v1/entities/doc/kept");
  expect(res.body).toMatchObject({ version: 1, data: { original: true } });
};

const nested = (depth: number) => "[".repeat(depth - 1) + "{}" + "]".repeat(depth - 1);

describe("bad input gets a problem and changes nothing", () => {
  it.each([
    ["malformed JSON", "application/json", "{not json", 400, "invalid-body"],
    ["a JSON array", "application/json", "[1,2]", 400, "invalid-body"],
    ["a JSON string", "application/json", '"text"', 400, "invalid-body"],
    ["a __proto__ key", "application/json", '{"a":{"__proto__":{"polluted":1}}}', 400, "invalid-body"],
    ["nesting deeper than 64", "application/json", `{"a":${nested(64)}}`, 400, "invalid-body"],
    ["an unsupported Content-Type", "text/plain", "{}", 415, "unsupported-media-type"],
    ["a body over the limit", "application/json", JSON.stringify({ big: "x".repeat(70 * 1024) }), 413, "payload-too-large"],
  ])("PUT with %s", async (_name, contentType, body, status, code) => {
    const res = await request(t.app).put("/v1/entities/doc/kept").set("Content-Type", contentType).send(body);
    expectProblem(res, status, code);
    await unchanged();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("accepts nesting of exactly 64", async () => {
    const res = await request(t.app)
      .put("/v1/entities/doc/deep")
      .set("Content-Type", "application/json")
      .send(`{"a":${nested(63)}}`);
    expect(res.status).toBe(201);
  });

  it("answers 413 on every route with a body", async () => {
    const big = JSON.stringify({ big: "x".repeat(70 * 1024) });
    const patch = await request(t.app)
      .patch("/v1/entities/doc/kept")
      .set("Content-Type", "application/merge-patch+json")
      .send(big);
    expectProblem(patch, 413, "payload-too-large");
    const ops = await request(t.app).post("/v1/entities/doc/kept/ops").set("Content-Type", "application/json").send(big);
    expectProblem(ops, 413, "payload-too-large");
    await unchanged();
  });

  it.each([
    ["an upper-case type", "/v1/entities/Doc/x"],
    ["a type starting with a digit", "/v1/entities/1doc/x"],
    ["a type of 64 characters", `/v1/entities/${"a".repeat(64)}/x`],
    ["an id with a space", "/v1/entities/doc/a%20b"],
    ["an id with a slash", "/v1/entities/doc/a%2Fb"],
    ["an id with Unicode", "/v1/entities/doc/caf%C3%A9"],
    ["an id of 256 characters", `/v1/entities/doc/${"a".repeat(256)}`],
  ])("refuses %s with 400 invalid-key", async (_name, path) => {
    expectProblem(await request(t.app).get(path), 400, "invalid-key");
    expectProblem(await request(t.app).put(path).send({}), 400, "invalid-key");
  });

  it("accepts every allowed id character", async () => {
    const id = "AZaz09._~:@!$'()*+,;=-";
    const res = await request(t.app).put(`/v1/entities/doc/${id}`).send({ ok: 1 });
    expect(res.status).toBe(201);
    expect(res.body.id).toBe(id);
    expect((await request(t.app).get(`/v1/entities/doc/${encodeURIComponent(id)}`)).body.id).toBe(id);
  });

  it("answers an unknown route with 404 route-not-found", async () => {
    expectProblem(await request(t.app).get("/v2/whatever"), 404, "route-not-found");
    expectProblem(await request(t.app).get("/v1/entities/doc/a/b/c"), 404, "route-not-found");
  });

  it("answers a wrong method with 405 and Allow", async () => {
    const res = await request(t.app).post("/v1/entities/doc/kept");
    expectProblem(res, 405, "method-not-allowed");
    expect(res.headers.allow).toMatch(/GET/);
    expect(res.headers.allow).toMatch(/PUT/);
    await unchanged();
  });
});
