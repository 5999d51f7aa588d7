import { createHash } from "node:crypto";
import { createServer, request, type IncomingHttpHeaders, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ForwardAnswerLostError, Forwarder, OwnerUnreachableError, endToEndHeaders } from "../../server/cluster/forwarder.js";

/** What the forwarding node sends in place of the client's headers of those names. */
const OWN_HEADERS = { "apostate-forwarded-by": "node-a", "x-request-id": "req-a" };
const servers: Server[] = [];
const forwarders: Forwarder[] = [];

afterEach(async () => {
  for (const forwarder of forwarders.splice(0)) forwarder.close();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

async function listen(listener: RequestListener): Promise<{ server: Server; url: string }> {
  const server = createServer(listener);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/**
 * A node that forwards every request to `ownerUrl` with {@link OWN_HEADERS}, having set its own
 * map version on the answer first, as a cluster node does; a forwarding failure is answered with
 * the error's class name.
 */
async function forwardingNode(ownerUrl: string, timeoutMs = 5_000, maxSocketsPerNode?: number): Promise<string> {
  const forwarder = await Forwarder.create({ timeoutMs, ...(maxSocketsPerNode !== undefined && { maxSocketsPerNode }) });
  forwarders.push(forwarder);
  const { url } = await listen((req, res) => {
    res.setHeader("apostate-map-version", "42");
    forwarder.forward(req, res, ownerUrl, OWN_HEADERS).catch((error: Error) => {
      res.writeHead(599, { "x-error": error.constructor.name }).end(error.message);
    });
  });
  return url;
}

interface Seen {
  method: string | undefined;
  url: string | undefined;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An owner that records what reached it and answers with a fixed status, headers and body. */
async function recordingOwner(answer: { status: number; headers: Record<string, string>; body: string }) {
  const seen: Seen[] = [];
  let connections = 0;
  const { server, url } = await listen((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.writeHead(answer.status, answer.headers).end(answer.body);
    });
  });
  server.on("connection", () => (connections += 1));
  return { url, seen, connections: () => connections };
}

describe("endToEndHeaders", () => {
  it.each<[string, IncomingHttpHeaders, IncomingHttpHeaders]>([
    [
      "keeps end-to-end headers",
      { authorization: "Bearer t", "if-match": '"3"' },
      { authorization: "Bearer t", "if-match": '"3"' },
    ],
    [
      "drops the hop-by-hop ones",
      {
        connection: "keep-alive",
        "keep-alive": "timeout=5",
        te: "trailers",
        "transfer-encoding": "chunked",
        upgrade: "h2c",
        a: "1",
      },
      { a: "1" },
    ],
    [
      "drops what Connection names",
      { connection: "close, X-Secret", "x-secret": "s", "x-request-id": "r" },
      { "x-request-id": "r" },
    ],
  ])("%s", (_name, given, want) => {
    expect(endToEndHeaders(given)).toEqual(want);
  });
});

describe("Forwarder", () => {
  it("passes method, path, query, body and end-to-end headers to the owner, and its answer back but for what the node set", async () => {
    const owner = await recordingOwner({
      status: 201,
      headers: {
        etag: '"1"',
        location: "/v1/entities/acct/a",
        "content-type": "application/json",
        "keep-alive": "timeout=9",
        "apostate-served-by": "node-b",
        "apostate-map-version": "41",
      },
      body: '{"version":1}',
    });
    const node = await forwardingNode(owner.url);

    const res = await fetch(`${node}/v1/entities/acct/a?x=1&prefix=b*`, {
      method: "PUT",
      headers: {
        authorization: "Bearer data",
        "idempotency-key": "k-1",
        "if-match": '"7"',
        "x-request-id": "req-1",
        "content-type": "application/json",
        connection: "keep-alive",
      },
      body: '{"balance":10}',
    });

    expect(res.status).toBe(201);
    expect(await res.text()).toBe('{"version":1}');
    expect(res.headers.get("etag")).toBe('"1"');
    expect(res.headers.get("location")).toBe("/v1/entities/acct/a");
    expect(res.headers.get("apostate-served-by")).toBe("node-b");
    // The forwarding node routed by its map: its version stays on the answer.
    expect(res.headers.get("apostate-map-version")).toBe("42");
    expect(res.headers.get("x-error")).toBeNull();
    expect(owner.seen).toHaveLength(1);
    const [seen] = owner.seen;
    expect(seen).toMatchObject({ method: "PUT", url: "/v1/entities/acct/a?x=1&prefix=b*", body: '{"balance":10}' });
    expect(seen?.headers).toMatchObject({
      authorization: "Bearer data",
      "idempotency-key": "k-1",
      "if-match": '"7"',
      "x-request-id": "req-a",
      "apostate-forwarded-by": "node-a",
      "content-type": "application/json",
      "content-length": "14",
      host: new URL(owner.url).host,
    });
  });

  it("meets a client's 100-continue expectation itself and passes the body on", async () => {
    const owner = await recordingOwner({ status: 200, headers: {}, body: "ok" });
    const node = await forwardingNode(owner.url);

    const status = await new Promise<number | undefined>((resolve, reject) => {
      const sending = request(`${node}/e`, { method: "PUT", headers: { expect: "100-continue", "content-length": "2" } });
      sending.on("continue", () => sending.end("{}"));
      sending.on("response", (answer) => resolve(answer.resume().statusCode));
      sending.on("error", reject);
    });

    expect(status).toBe(200);
    expect(owner.seen[0]).toMatchObject({ method: "PUT", body: "{}" });
    expect(owner.seen[0]?.headers.expect).toBeUndefined();
  });

  it("streams a large body intact", async () => {
    const owner = await recordingOwner({ status: 200, headers: {}, body: "ok" });
    const node = await forwardingNode(owner.url);
    const body = "x".repeat(3 * 1024 * 1024);

    const res = await fetch(`${node}/big`, { method: "POST", body });

    expect(res.status).toBe(200);
    const digest = (text: string) => createHash("sha256").update(text).digest("hex");
    expect(digest(owner.seen[0]?.body ?? "")).toBe(digest(body));
  });

  it("reuses one pooled connection to the owner for requests that follow each other", async () => {
    const owner = await recordingOwner({ status: 200, headers: {}, body: "ok" });
    const node = await forwardingNode(owner.url);

    for (let i = 0; i < 5; i += 1) expect((await fetch(`${node}/r/${i}`)).status).toBe(200);

    expect(owner.seen.map((seen) => seen.url)).toEqual(["/r/0", "/r/1", "/r/2", "/r/3", "/r/4"]);
    expect(owner.connections()).toBe(1);
  });

  it("sends concurrent reads on a few connections, each answer to its own request, and writes beside them", async () => {
    // The reads are answered only once the write has been: a write held behind them would never be.
    let writeAnswered: () => void = () => undefined;
    const written = new Promise<void>((resolve) => (writeAnswered = resolve));
    let connections = 0;
    const { server, url } = await listen((req, res) => {
      req.resume().on("end", () => {
        if (req.method === "GET") void (req.url === "/warm" ? Promise.resolve() : written).then(() => res.end(req.url));
        else res.end(req.url, () => writeAnswered());
      });
    });
    server.on("connection", () => (connections += 1));
    const node = await forwardingNode(url);
    expect(await (await fetch(`${node}/warm`)).text()).toBe("/warm");

    const reads = Array.from({ length: 16 }, (_, i) =>
      fetch(`${node}/r/${i}`).then(async (res) => ({ status: res.status, body: await res.text() })),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    const write = await fetch(`${node}/w`, { method: "PUT", body: "{}" });

    expect({ status: write.status, body: await write.text() }).toEqual({ status: 200, body: "/w" });
    expect(await Promise.all(reads)).toEqual(Array.from({ length: 16 }, (_, i) => ({ status: 200, body: `/r/${i}` })));
    // Without pipelining each of the 16 reads would take a connection of its own.
    expect(connections).toBeLessThan(12);
  });

  it("rejects with OwnerUnreachableError when nothing answers at the owner's address", async () => {
    const { server, url: deadUrl } = await listen(() => undefined);
    await new Promise((resolve) => server.close(resolve));
    servers.splice(servers.indexOf(server), 1);
    const node = await forwardingNode(deadUrl);

    const res = await fetch(`${node}/v1/entities/acct/a`, { method: "DELETE" });

    expect(res.status).toBe(599);
    expect(res.headers.get("x-error")).toBe(OwnerUnreachableError.name);
  });

  it("rejects with ForwardAnswerLostError when the owner drops the connection without answering", async () => {
    const { url } = await listen((req) => req.socket.destroy());
    const node = await forwardingNode(url);

    const res = await fetch(`${node}/v1/entities/acct/a/ops`, { method: "POST", body: "{}" });

    expect(res.status).toBe(599);
    expect(res.headers.get("x-error")).toBe(ForwardAnswerLostError.name);
  });

  it.each([
    ["a write", ForwardAnswerLostError.name, "PUT"],
    ["a read, which cannot be in doubt,", OwnerUnreachableError.name, "GET"],
  ])("rejects %s with %s when the owner answers nothing within the timeout", async (_what, errorName, method) => {
    const { url } = await listen(() => undefined);
    const node = await forwardingNode(url, 200);

    const started = Date.now();
    const res = await fetch(`${node}/slow`, { method, body: method === "GET" ? undefined : "{}" });

    expect(res.status).toBe(599);
    expect(res.headers.get("x-error")).toBe(errorName);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("keeps its pooled connections for other requests when clients go away before their answers come", async () => {
    const { url: ownerUrl } = await listen((req, res) => {
      req.resume().on("end", () => setTimeout(() => res.end("late"), 100));
    });
    const node = await forwardingNode(ownerUrl, 5_000, 2);

    for (let i = 0; i < 4; i += 1) {
      await new Promise<void>((resolve) => {
        const gone = request(`${node}/gone/${i}`);
        gone.on("error", () => resolve());
        gone.end(() => setTimeout(() => gone.destroy(), 20));
      });
    }
    const res = await fetch(`${node}/after`, { signal: AbortSignal.timeout(3_000) });

    expect(res.status).toBe(200);
    expect(await res.text()).toBe("late");
  });

  /** An owner whose connections each serve one answer and are then cut when a second request arrives on them. */
  async function oneAnswerPerConnectionOwner(alwaysCut = false) {
    const answered = new WeakSet<object>();
    let connections = 0;
    let requests = 0;
    const { server, url } = await listen((req, res) => {
      requests += 1;
      if (alwaysCut || answered.has(req.socket)) {
        req.socket.destroy();
        return;
      }
      answered.add(req.socket);
      req.resume().on("end", () => res.end("ok"));
    });
    server.on("connection", () => (connections += 1));
    return { url, connections: () => connections, requests: () => requests };
  }

  it("sends a read once more on a fresh connection when a pooled connection fails under it", async () => {
    const owner = await oneAnswerPerConnectionOwner();
    const node = await forwardingNode(owner.url);

    expect((await fetch(`${node}/r/1`)).status).toBe(200);
    const res = await fetch(`${node}/r/2`);

    expect(res.status).toBe(200);
    expect(await res.text()).toBe("ok");
    expect(owner.connections()).toBe(2);
    expect(owner.requests()).toBe(3);
  });

  it("never sends a write twice: a pooled connection failing under it loses its answer", async () => {
    const owner = await oneAnswerPerConnectionOwner();
    const node = await forwardingNode(owner.url);

    expect((await fetch(`${node}/w/1`, { method: "PUT", body: "{}" })).status).toBe(200);
    const res = await fetch(`${node}/w/2`, { method: "PUT", body: "{}" });

    expect(res.status).toBe(599);
    expect(res.headers.get("x-error")).toBe(ForwardAnswerLostError.name);
    expect(owner.requests()).toBe(2);
  });

  it("rejects a read with OwnerUnreachableError when the owner cuts every connection, after one fresh try", async () => {
    const owner = await oneAnswerPerConnectionOwner(true);
    const node = await forwardingNode(owner.url);

    const res = await fetch(`${node}/r/1`);

    expect(res.status).toBe(599);
    expect(res.headers.get("x-error")).toBe(OwnerUnreachableError.name);
    expect(owner.requests()).toBe(1);
  });
});
