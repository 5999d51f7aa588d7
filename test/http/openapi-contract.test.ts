import { afterAll, beforeAll, describe, expect, it } from "vitest";
import request from "supertest";
import { PROBLEMS } from "../../server/http/problems.js";
import { contractViolations, type Exchange } from "../support/contract.js";
import { expectProblem } from "../support/problem.js";
import { createTestApp, type TestApp } from "../support/test-app.js";

/*
 * The contract checker itself: what openapi.yaml allows passes, and each kind of disagreement
 * it exists to catch is caught. The statuses each operation must declare are in
 * openapi-statuses.test.ts.
 */

const ENTITY = {
  type: "account",
  id: "alice",
  version: 2,
  data: { balance: 5 },
  createdAt: "2026-12-01T10:00:00.000Z",
  updatedAt: "2026-12-01T10:00:01.000Z",
};

function problem(code: keyof typeof PROBLEMS, status: number, extras: Record<string, unknown> = {}): string {
  return JSON.stringify({
    type: `urn:apostate:problem:${code}`,
    title: PROBLEMS[code].title,
    status,
    detail: "what went wrong",
    code,
    instance: "/v1/entities/account/alice",
    ...extras,
  });
}

const PROBLEM_HEADERS = { "content-type": "application/problem+json; charset=utf-8" };
const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" };

/** A PUT of alice answered 200 with her representation: valid as it stands. */
const goodPut: Exchange = {
  method: "PUT",
  url: "/v1/entities/account/alice",
  requestHeaders: { "content-type": "application/json", "if-match": '"1"' },
  requestBody: '{"balance":5}',
  status: 200,
  responseHeaders: { ...JSON_HEADERS, etag: '"2"' },
  responseBody: JSON.stringify(ENTITY),
};

const failedCondition = { index: 0, path: "/balance", op: "gte", value: 10 };

describe("the contract checker", () => {
  it.each<[string, Exchange]>([
    ["a PUT answered with the entity", goodPut],
    [
      "a 412 version-mismatch with current: null",
      {
        ...goodPut,
        status: 412,
        responseHeaders: PROBLEM_HEADERS,
        responseBody: problem("version-mismatch", 412, { current: null }),
      },
    ],
    [
      "a 412 version-mismatch with the current entity",
      {
        ...goodPut,
        status: 412,
        responseHeaders: PROBLEM_HEADERS,
        responseBody: problem("version-mismatch", 412, { current: ENTITY }),
      },
    ],
    [
      "a 409 condition-failed with current: null",
      {
        method: "POST",
        url: "/v1/entities/account/alice/ops",
        requestHeaders: { "content-type": "application/json" },
        requestBody: JSON.stringify({ if: [{ path: "/balance", op: "gte", value: 10 }], do: [], upsert: true }),
        status: 409,
        responseHeaders: PROBLEM_HEADERS,
        responseBody: problem("condition-failed", 409, { failed: failedCondition, current: null }),
      },
    ],
    [
      "a JSON Patch accepted with 200",
      {
        ...goodPut,
        method: "PATCH",
        requestHeaders: { "content-type": "application/json-patch+json" },
        requestBody: '[{"op":"replace","path":"/balance","value":5}]',
      },
    ],
    [
      "a 503 with Retry-After",
      {
        ...goodPut,
        status: 503,
        responseHeaders: { ...PROBLEM_HEADERS, "retry-after": "1" },
        responseBody: problem("unavailable", 503),
      },
    ],
    [
      "a 405 on a known path, with Allow",
      {
        ...goodPut,
        method: "POST",
        status: 405,
        responseHeaders: { ...PROBLEM_HEADERS, allow: "GET, HEAD, PUT, PATCH, DELETE" },
        responseBody: problem("method-not-allowed", 405),
      },
    ],
    [
      "a 404 route-not-found on an unknown path",
      {
        ...goodPut,
        url: "/v2/nothing",
        status: 404,
        responseHeaders: PROBLEM_HEADERS,
        responseBody: problem("route-not-found", 404),
      },
    ],
    ["a HEAD answered with headers only", { ...goodPut, method: "HEAD", requestHeaders: {}, requestBody: "", responseBody: "" }],
    [
      "query parameters on /healthz, which ignores them",
      {
        method: "GET",
        url: "/healthz?probe=1&x",
        requestHeaders: {},
        requestBody: "",
        status: 200,
        responseHeaders: JSON_HEADERS,
        responseBody: '{"status":"ok"}',
      },
    ],
  ])("passes %s", async (_name, exchange) => {
    expect(await contractViolations(exchange)).toEqual([]);
  });

  it.each<[string, Exchange, RegExp]>([
    [
      "a status the operation does not declare",
      { ...goodPut, status: 404, responseHeaders: PROBLEM_HEADERS, responseBody: problem("entity-not-found", 404) },
      /404 is not declared for putEntity/,
    ],
    ["an entity without its ETag", { ...goodPut, responseHeaders: JSON_HEADERS }, /200 lacks etag/],
    ["a 201 without Location", { ...goodPut, status: 201 }, /201 lacks location/],
    [
      "a 503 without Retry-After",
      { ...goodPut, status: 503, responseHeaders: PROBLEM_HEADERS, responseBody: problem("unavailable", 503) },
      /503 lacks retry-after/,
    ],
    [
      "an undeclared API header",
      { ...goodPut, responseHeaders: { ...goodPut.responseHeaders, allow: "GET" } },
      /allow is not declared for 200/,
    ],
    [
      "a body that is not an entity",
      { ...goodPut, responseBody: JSON.stringify({ ...ENTITY, version: 0 }) },
      /body: \/version must be >= 1/,
    ],
    [
      "a body in another media type",
      { ...goodPut, responseHeaders: { "content-type": "text/html", etag: '"2"' } },
      /text\/html is not declared for 200/,
    ],
    ["a body on HEAD", { ...goodPut, method: "HEAD", requestHeaders: {}, requestBody: "" }, /a body where 200 declares none/],
    [
      "a current that is neither an entity nor null",
      {
        ...goodPut,
        status: 412,
        responseHeaders: PROBLEM_HEADERS,
        responseBody: problem("version-mismatch", 412, { current: { id: "alice" } }),
      },
      /body: \/current/,
    ],
    [
      "a problem with a member it does not carry",
      {
        ...goodPut,
        status: 412,
        responseHeaders: PROBLEM_HEADERS,
        responseBody: problem("version-mismatch", 412, { current: null, failed: failedCondition }),
      },
      /version-mismatch carries failed/,
    ],
    [
      "a problem without the member its code carries",
      { ...goodPut, status: 412, responseHeaders: PROBLEM_HEADERS, responseBody: problem("version-mismatch", 412) },
      /version-mismatch lacks current/,
    ],
    [
      "a problem code the status does not list",
      { ...goodPut, status: 400, responseHeaders: PROBLEM_HEADERS, responseBody: problem("entity-not-found", 400) },
      /problem code "entity-not-found" is not one of 400's/,
    ],
    [
      "an accepted request with an id the document refuses",
      { ...goodPut, url: "/v1/entities/account/.." },
      /\/path\/id must match pattern/,
    ],
    [
      "an accepted request with an undeclared query parameter",
      { ...goodPut, url: "/v1/entities/account/alice?force=1" },
      /\/query must NOT have additional properties/,
    ],
    [
      "an accepted request in an undeclared media type",
      { ...goodPut, method: "PATCH", requestHeaders: { "content-type": "text/plain" } },
      /text\/plain is not a declared media type/,
    ],
    [
      "an accepted JSON Patch the document refuses",
      {
        ...goodPut,
        method: "PATCH",
        requestHeaders: { "content-type": "application/json-patch+json" },
        requestBody: '[{"op":"jump","path":""}]',
      },
      /\/0 must match exactly one schema in oneOf/,
    ],
    ["a success on an unknown route", { ...goodPut, url: "/v2/nothing" }, /200 to a request no operation declares/],
    [
      "a 405 without Allow",
      {
        ...goodPut,
        method: "POST",
        status: 405,
        responseHeaders: PROBLEM_HEADERS,
        responseBody: problem("method-not-allowed", 405),
      },
      /405 without Allow/,
    ],
    [
      "an unknown route answered without a problem",
      {
        ...goodPut,
        url: "/v2/nothing",
        status: 404,
        responseHeaders: { "content-type": "text/html" },
        responseBody: "<h1>Not found</h1>",
      },
      /404 is not a problem/,
    ],
  ])("catches %s", async (_name, exchange, violation) => {
    const found = await contractViolations(exchange);
    expect(
      found.some((v) => violation.test(v)),
      found.join("\n"),
    ).toBe(true);
  });
});

describe("through the server", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ shardCount: 2 });
  });
  afterAll(() => t.close());

  it("answers a failed condition on an absent entity with 409 and current: null", async () => {
    const res = await request(t.app)
      .post("/v1/entities/account/nobody/ops")
      .send({
        if: [{ path: "/balance", op: "gte", value: 10 }],
        do: [{ op: "inc", path: "/balance", value: -10 }],
        upsert: true,
      });
    expectProblem(res, 409, "condition-failed");
    expect(res.body).toMatchObject({ current: null, failed: { index: 0, path: "/balance", op: "gte", value: 10 } });
  });

  it("answers HEAD beside every GET with the GET's status and headers, without a body", async () => {
    await request(t.app).put("/v1/entities/account/alice").send({ balance: 5 }).expect(201);
    for (const path of [
      "/v1/entities/account/alice",
      "/v1/entities/account/nobody",
      "/v1/entities/account?limit=1",
      "/admin/shards",
      "/admin/shards/1",
      "/admin/shards/1/entities",
      "/admin/locate/account/alice",
      "/healthz",
      "/readyz",
      "/metrics",
    ]) {
      const [get, head] = [await request(t.app).get(path), await request(t.app).head(path)];
      expect({ path, status: head.status, text: head.text }).toEqual({ path, status: get.status, text: undefined });
      expect(head.headers["content-type"], path).toBe(get.headers["content-type"]);
      expect(head.headers.etag, path).toBe(get.headers.etag);
    }
  });

  it("answers If-Match on an absent entity with 412 and current: null", async () => {
    const res = await request(t.app)
      .patch("/v1/entities/account/nobody")
      .set("If-Match", '"1"')
      .type("application/merge-patch+json")
      .send({ a: 1 });
    expectProblem(res, 412, "version-mismatch");
    expect(res.body).toMatchObject({ current: null });
  });
});
