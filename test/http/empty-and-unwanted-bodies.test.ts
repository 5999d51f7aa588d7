import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bodyOf, jsonRequest, parsed, send } from "../support/http.js";
import { expectProblem } from "../support/problem.js";
import { RawConnection, statusOf } from "../support/raw-socket.js";
import { listenTestApp, type TestApp } from "../support/test-app.js";

let t: TestApp & { url: string };
const KEPT = "/v1/entities/doc/kept";

beforeAll(async () => {
  t = await listenTestApp();
  expect((await send(t.url, "PUT", KEPT, jsonRequest({ original: true }))).status).toBe(201);
});
afterAll(() => t.close());

async function expectKeptUnchanged(): Promise<void> {
  const reply = await send(t.url, "GET", KEPT);
  expect({ status: reply.status, body: bodyOf(reply) }).toMatchObject({
    status: 200,
    body: { version: 1, data: { original: true } },
  });
}

const writes = [
  ["PUT", KEPT, "application/json"],
  ["PATCH", KEPT, "application/merge-patch+json"],
  ["PATCH", KEPT, "application/json-patch+json"],
  ["POST", `${KEPT}/ops`, "application/json"],
] as const;

describe("a write with no body is 400 invalid-body, and nothing is written", () => {
  it.each(writes)("%s %s (%s) with Content-Length: 0", async (method, path, contentType) => {
    const reply = await send(t.url, method, path, { headers: { "content-type": contentType }, body: "" });
    expectProblem(parsed(reply), 400, "invalid-body", `${method} needs a body, and the request has none`);
    await expectKeptUnchanged();
  });

  it.each(writes)("%s %s (%s) without any body framing", async (method, path, contentType) => {
    const connection = await RawConnection.open(t.url);
    connection.write(`${method} ${path} HTTP/1.1\r\nHost: test\r\nContent-Type: ${contentType}\r\nConnection: close\r\n\r\n`);
    const response = await connection.response(5000);
    expect(statusOf(response), response).toBe(400);
    expect(response).toContain('"code":"invalid-body"');
    await expectKeptUnchanged();
  });

  it("an empty chunked body is no body either", async () => {
    const connection = await RawConnection.open(t.url);
    connection.write(
      `PUT ${KEPT} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`,
    );
    const response = await connection.response(5000);
    expect(statusOf(response), response).toBe(400);
    expect(response).toContain('"code":"invalid-body"');
    await expectKeptUnchanged();
  });

  it("an upsert with an empty body creates nothing", async () => {
    const reply = await send(t.url, "POST", "/v1/entities/doc/never/ops", {
      headers: { "content-type": "application/json" },
      body: "",
    });
    expectProblem(parsed(reply), 400, "invalid-body");
    expectProblem(parsed(await send(t.url, "GET", "/v1/entities/doc/never")), 404, "entity-not-found");
  });

  it("an empty body with no Content-Type is still 400 invalid-body", async () => {
    expectProblem(parsed(await send(t.url, "PUT", KEPT, { body: "" })), 400, "invalid-body");
    await expectKeptUnchanged();
  });
});

describe("a body on a route that takes none is 415 unsupported-media-type, and nothing is done", () => {
  const body = jsonRequest({ file: "../../evil.sqlite" });

  it("DELETE with a body does not delete", async () => {
    expectProblem(parsed(await send(t.url, "DELETE", KEPT, body)), 415, "unsupported-media-type", "DELETE takes no body");
    expectProblem(parsed(await send(t.url, "DELETE", KEPT, { body: "x" })), 415, "unsupported-media-type");
    await expectKeptUnchanged();
  });

  it("check and backup with a body run nothing and write no backup", async () => {
    for (const action of ["check", "backup"]) {
      const reply = await send(t.url, "POST", `/admin/shards/0/${action}`, body);
      expectProblem(parsed(reply), 415, "unsupported-media-type", "POST takes no body");
    }
    expect(existsSync(join(t.dataDir, "backups"))).toBe(false);
  });

  it.each([
    "/v1/entities/doc/kept",
    "/v1/entities/doc",
    "/admin/shards",
    "/admin/shards/0",
    "/admin/shards/0/entities",
    "/admin/locate/doc/kept",
    "/healthz",
    "/readyz",
    "/metrics",
  ])("GET %s with a body", async (path) => {
    expectProblem(parsed(await send(t.url, "GET", path, body)), 415, "unsupported-media-type", "GET takes no body");
  });

  it("a chunked body on DELETE is refused too", async () => {
    const connection = await RawConnection.open(t.url);
    connection.write(`DELETE ${KEPT} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`);
    const response = await connection.response(2000);
    expect(statusOf(response), response).toBe(415);
    connection.destroy();
    await expectKeptUnchanged();
  });

  it("an empty body on DELETE is no body: the delete goes ahead", async () => {
    expect((await send(t.url, "PUT", "/v1/entities/doc/gone", jsonRequest({}))).status).toBe(201);
    expect((await send(t.url, "DELETE", "/v1/entities/doc/gone", { body: "" })).status).toBe(204);
    expectProblem(parsed(await send(t.url, "GET", "/v1/entities/doc/gone")), 404, "entity-not-found");
  });
});
