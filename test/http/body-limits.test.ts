import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonRequest, parsed, send } from "../support/http.js";
import { expectProblem } from "../support/problem.js";
import { RawConnection, sleep, statusOf } from "../support/raw-socket.js";
import { listenTestApp, type TestApp } from "../support/test-app.js";

const LIMIT = 4096;
let t: TestApp & { url: string };
beforeAll(async () => {
  t = await listenTestApp({ bodyLimit: LIMIT });
});
afterAll(() => t.close());

const head = (path: string, framing: string) =>
  `PUT ${path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n${framing}\r\n`;

async function expectAbsent(id: string): Promise<void> {
  expectProblem(parsed(await send(t.url, "GET", `/v1/entities/big/${id}`)), 404, "entity-not-found");
}

describe("the body limit holds while the body arrives", () => {
  it("a chunked body is cut off at the limit: 413 at once, and the connection is closed", async () => {
    const connection = await RawConnection.open(t.url);
    connection.write(head("/v1/entities/big/chunked", "Transfer-Encoding: chunked\r\n"));
    const chunk = "x".repeat(1024);
    connection.write(`1\r\n[\r\n`);
    // Past the limit, and the body is not finished: the answer cannot wait for its end.
    for (let i = 0; i < 5; i++) connection.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    await expect.poll(() => statusOf(connection.text), { timeout: 5000 }).toBe(413);
    expect(connection.text).toMatch(/connection: close/i);
    expect(connection.text).toContain('"code":"payload-too-large"');
    await expect.poll(() => connection.hasClosed, { timeout: 5000 }).toBe(true);
    await expectAbsent("chunked");
  });

  it("a declared length over the limit is refused before any of the body is sent", async () => {
    const connection = await RawConnection.open(t.url);
    connection.write(head("/v1/entities/big/declared", `Content-Length: ${LIMIT + 1}\r\n`));
    await expect.poll(() => statusOf(connection.text), { timeout: 5000 }).toBe(413);
    expect(connection.text).toContain(`the body's declared ${LIMIT + 1} bytes are over the limit of ${LIMIT}`);
    await expect.poll(() => connection.hasClosed, { timeout: 5000 }).toBe(true);
    await expectAbsent("declared");
  });

  it("a body of exactly the limit is read", async () => {
    const body = JSON.stringify({ pad: "" });
    const exact = JSON.stringify({ pad: "x".repeat(LIMIT - body.length) });
    expect(Buffer.byteLength(exact)).toBe(LIMIT);
    expect((await send(t.url, "PUT", "/v1/entities/big/exact", jsonRequest(JSON.parse(exact)))).status).toBe(201);
  });

  it("the server goes on serving after a cut-off body", async () => {
    const connection = await RawConnection.open(t.url);
    connection.write(head("/v1/entities/big/again", "Transfer-Encoding: chunked\r\n"));
    connection.write(`${(LIMIT + 1).toString(16)}\r\n${"x".repeat(LIMIT + 1)}\r\n`);
    await expect.poll(() => statusOf(connection.text), { timeout: 5000 }).toBe(413);
    await sleep(50);
    expect((await send(t.url, "GET", "/healthz")).status).toBe(200);
    connection.destroy();
  });
});

describe("the body's digest (idempotency fingerprint) is of the bytes as sent", () => {
  it("the same JSON spelled differently is another request", async () => {
    const key = { "idempotency-key": "digest-1", "content-type": "application/json" };
    expect((await send(t.url, "PUT", "/v1/entities/big/digest", { headers: key, body: '{"a":1}' })).status).toBe(201);
    const replay = await send(t.url, "PUT", "/v1/entities/big/digest", { headers: key, body: '{"a":1}' });
    expect({ status: replay.status, replayed: replay.headers["idempotent-replayed"] }).toEqual({ status: 201, replayed: "true" });
    const respelled = await send(t.url, "PUT", "/v1/entities/big/digest", { headers: key, body: '{ "a": 1 }' });
    expectProblem(parsed(respelled), 422, "idempotency-key-reused");
  });
});
