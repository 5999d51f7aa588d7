import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bodyOf, jsonRequest, parsed, send } from "../support/http.js";
import { expectProblem } from "../support/problem.js";
import { listenTestApp, type TestApp } from "../support/test-app.js";

let t: TestApp & { url: string };
beforeAll(async () => {
  t = await listenTestApp();
});
afterAll(() => t.close());

const idsListed = async (query: string) => {
  const reply = await send(t.url, "GET", `/v1/entities/named?${query}`);
  expect(reply.status, reply.text).toBe(200);
  return (bodyOf(reply) as { items: { id: string }[] }).items.map((item) => item.id);
};

describe("every character RFC 3986 allows in a query works, raw or percent-encoded", () => {
  const SUB_DELIMS = "!$'()*+,;=:@";
  beforeAll(async () => {
    for (const id of ["b*1", "o'neil", "a(1)", "plain", ...[...SUB_DELIMS].map((char) => `q${char}x`)]) {
      expect((await send(t.url, "PUT", `/v1/entities/named/${encodeURIComponent(id)}`, jsonRequest({}))).status).toBe(201);
    }
  });

  it.each([
    ["prefix=b*", ["b*1"]],
    ["prefix=o'neil", ["o'neil"]],
    ["prefix=a(1)", ["a(1)"]],
    ["prefix=a%281%29", ["a(1)"]],
  ])("?%s", async (query, ids) => {
    expect(await idsListed(query)).toEqual(ids);
  });

  it.each([...SUB_DELIMS])("%s", async (char) => {
    const encoded = `%${char.charCodeAt(0).toString(16).toUpperCase()}`;
    // `=` after the first is part of the value; `&` would end it, so it is not among these.
    expect(await idsListed(`prefix=q${char}`)).toEqual([`q${char}x`]);
    expect(await idsListed(`prefix=q${encoded}`)).toEqual([`q${char}x`]);
  });
});

describe("undeclared and malformed query parameters are 400 invalid-query", () => {
  it.each([
    ["/v1/entities/named?limt=5", "limt"],
    ["/v1/entities/named/plain?verbose=1", "verbose"],
    ["/v1/entities/named/plain/ops?x", "x"],
    ["/admin/shards?all=true", "all"],
    ["/admin/shards/0?x=1", "x"],
    ["/admin/shards/0/entities?limit=1&prefix=a", "prefix"],
    ["/admin/locate/named/plain?shard=1", "shard"],
    ["/v1/entities/named?__proto__=x", "__proto__"],
  ])("%s names %s", async (path, name) => {
    const method = path.includes("/ops") ? "POST" : "GET";
    const reply = await send(t.url, method, path, method === "POST" ? jsonRequest({ do: [] }) : {});
    expectProblem(parsed(reply), 400, "invalid-query", new RegExp(`unknown query parameter "${name}"`));
  });

  it.each([
    ["a repeated parameter", "limit=1&limit=2"],
    ["a limit that is not a number", "limit=ten"],
    ["a limit with a sign", "limit=%2B5"],
    ["a limit in hexadecimal", "limit=0x10"],
    ["a limit over 1000", "limit=1001"],
    ["a malformed percent-encoding", "prefix=%ZZ"],
  ])("%s", async (_name, query) => {
    expectProblem(parsed(await send(t.url, "GET", `/v1/entities/named?${query}`)), 400, "invalid-query");
  });

  it("a limit written as a decimal number is taken", async () => {
    expect(await idsListed("limit=2")).toHaveLength(2);
  });
});

describe("probes and metrics ignore the query", () => {
  it.each(["/healthz?x=1", "/readyz?cachebust=123&x", "/metrics?name[]=x", "/healthz?%ZZ"])("%s", async (path) => {
    expect((await send(t.url, "GET", path)).status).toBe(200);
  });
});
