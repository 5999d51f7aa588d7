import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonRequest, send, type Reply } from "../support/http.js";
import { listenTestApp, type TestApp } from "../support/test-app.js";

let t: TestApp & { url: string };
beforeAll(async () => {
  t = await listenTestApp();
  expect((await send(t.url, "PUT", "/v1/entities/thing/one", jsonRequest({ n: 1 }))).status).toBe(201);
});
afterAll(() => t.close());

/** The headers that must agree: everything but those that differ between any two requests. */
function comparable(reply: Reply): Record<string, unknown> {
  const { date: _date, "x-request-id": _id, ...headers } = reply.headers;
  return headers;
}

describe("HEAD answers as GET, without the body", () => {
  it.each([
    ["/v1/entities/thing/one", {}],
    ["/v1/entities/thing/one", { "if-none-match": '"1"' }],
    ["/v1/entities/thing/absent", {}],
    ["/v1/entities/Bad/one", {}],
    ["/v1/entities/thing", {}],
    ["/v1/entities/thing?limit=1", {}],
    ["/v1/entities/thing?limt=1", {}],
    ["/admin/shards/0", {}],
    ["/admin/shards/0/entities", {}],
    ["/admin/shards/99", {}],
    ["/admin/locate/thing/one", {}],
    ["/healthz", {}],
    ["/readyz", {}],
  ])("%s %j", async (path, headers) => {
    const get = await send(t.url, "GET", path, { headers });
    const head = await send(t.url, "HEAD", path, { headers });
    expect(head.text).toBe("");
    expect({ status: head.status, headers: comparable(head) }).toEqual({ status: get.status, headers: comparable(get) });
  });

  // Their bodies change from one request to the next (sizes, counters), so only the length may differ.
  it.each(["/admin/shards", "/metrics"])("%s", async (path) => {
    const get = await send(t.url, "GET", path);
    const head = await send(t.url, "HEAD", path);
    expect(head.text).toBe("");
    const { "content-length": _getLength, ...getHeaders } = comparable(get);
    const { "content-length": headLength, ...headHeaders } = comparable(head);
    expect({ status: head.status, headers: headHeaders }).toEqual({ status: get.status, headers: getHeaders });
    expect(Number(headLength)).toBeGreaterThan(0);
  });

  it("a route without GET has no HEAD either: 405 with Allow", async () => {
    const reply = await send(t.url, "HEAD", "/v1/entities/thing/one/ops");
    expect({ status: reply.status, allow: reply.headers.allow, text: reply.text }).toEqual({
      status: 405,
      allow: "POST",
      text: "",
    });
  });

  it("HEAD is in the Allow of a route with GET", async () => {
    const reply = await send(t.url, "POST", "/v1/entities/thing/one");
    expect(reply.headers.allow).toBe("GET, HEAD, PUT, PATCH, DELETE");
  });
});
