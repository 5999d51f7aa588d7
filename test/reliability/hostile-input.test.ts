import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../support/test-app.js";
import { bodyOf, jsonRequest, send, type Reply, type SendOptions } from "../support/http.js";
import { listAll } from "../support/list.js";
import { RawConnection, sleep, statusOf } from "../support/raw-socket.js";

/*
 * Hostile requests, each answered with its problem and followed by a read-back showing that
 * nothing changed. The app runs in this process, so a prototype pollution anywhere in the
 * request path would show up on this process's own Object.prototype.
 */

let testApp: TestApp;
let server: Server;
let url: string;
const PROTOTYPE_KEYS = Object.getOwnPropertyNames(Object.prototype).sort();

beforeAll(async () => {
  testApp = await createTestApp({ shardCount: 4 });
  server = createServer(testApp.app).listen(0, "127.0.0.1");
  await once(server, "listening");
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  testApp.close();
});

const VICTIM_DATA = { a: 1, list: [1], "a/b": 2, "m~n": 3, n: 9_007_199_254_740_990 };
let victims = 0;
/** A new entity per test, at version 1, for the hostile requests to aim at. */
let victim = "";

beforeEach(async () => {
  victim = `/v1/entities/victim/v${++victims}`;
  expect((await send(url, "PUT", victim, jsonRequest(VICTIM_DATA))).status).toBe(201);
});

/** The victim as it must stay: version 1, its original data; Object.prototype untouched. */
async function expectVictimUnchanged(): Promise<void> {
  const reply = await send(url, "GET", victim);
  expect(reply.status).toBe(200);
  expect(bodyOf(reply)).toMatchObject({ version: 1, data: VICTIM_DATA });
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTOTYPE_KEYS);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
}

function expectProblem(reply: Reply, status: number, code: string): void {
  const { code: actual } = (bodyOf(reply) ?? {}) as { code?: string };
  expect({ status: reply.status, contentType: reply.headers["content-type"]?.split(";")[0], code: actual }, reply.text).toEqual({
    status,
    contentType: "application/problem+json",
    code,
  });
}

const raw = (body: string, contentType = "application/json"): SendOptions => ({ headers: { "content-type": contentType }, body });
const jsonPatch = (operations: unknown): SendOptions => jsonRequest(operations, "application/json-patch+json");
const mergePatch = (body: string): SendOptions => raw(body, "application/merge-patch+json");
const ops = (body: unknown): SendOptions => jsonRequest(body);

/** A hostile request at the victim (`/ops` for POST) and the problem it must get. */
type Case = [name: string, { method: string; options: SendOptions; status: number; code: string }];

async function sendAtVictim(method: string, options: SendOptions): Promise<Reply> {
  return send(url, method, method === "POST" ? `${victim}/ops` : victim, options);
}

describe("prototype pollution is refused everywhere, and nothing changes", () => {
  const deepProto = '{"a":{"b":[{"c":{"__proto__":{"polluted":1}}}]}}';
  const cases: Case[] = [
    [
      "PUT body with __proto__",
      { method: "PUT", options: raw('{"__proto__":{"polluted":1}}'), status: 400, code: "invalid-body" },
    ],
    ["PUT body with a nested __proto__", { method: "PUT", options: raw(deepProto), status: 400, code: "invalid-body" }],
    [
      "merge patch with __proto__",
      { method: "PATCH", options: mergePatch('{"__proto__":{"polluted":1}}'), status: 400, code: "invalid-body" },
    ],
    [
      "merge patch with a nested __proto__",
      { method: "PATCH", options: mergePatch(deepProto), status: 400, code: "invalid-body" },
    ],
    [
      "JSON Patch add to /__proto__/polluted",
      {
        method: "PATCH",
        options: jsonPatch([{ op: "add", path: "/__proto__/polluted", value: 1 }]),
        status: 400,
        code: "invalid-body",
      },
    ],
    [
      "JSON Patch replace /a/__proto__",
      {
        method: "PATCH",
        options: jsonPatch([{ op: "replace", path: "/a/__proto__", value: {} }]),
        status: 400,
        code: "invalid-body",
      },
    ],
    [
      "JSON Patch copy from /__proto__",
      {
        method: "PATCH",
        options: jsonPatch([{ op: "copy", from: "/__proto__", path: "/x" }]),
        status: 400,
        code: "invalid-body",
      },
    ],
    [
      "JSON Patch move to /__proto__",
      {
        method: "PATCH",
        options: jsonPatch([{ op: "move", from: "/a", path: "/__proto__" }]),
        status: 400,
        code: "invalid-body",
      },
    ],
    [
      "JSON Patch value with __proto__",
      {
        method: "PATCH",
        options: raw('[{"op":"add","path":"/x","value":{"__proto__":{"polluted":1}}}]', "application/json-patch+json"),
        status: 400,
        code: "invalid-body",
      },
    ],
    [
      "JSON Patch test of /__proto__",
      { method: "PATCH", options: jsonPatch([{ op: "test", path: "/__proto__", value: {} }]), status: 400, code: "invalid-body" },
    ],
    [
      "ops set /__proto__/polluted",
      {
        method: "POST",
        options: ops({ do: [{ op: "set", path: "/__proto__/polluted", value: 1 }] }),
        status: 400,
        code: "invalid-body",
      },
    ],
    [
      "ops inc /x/__proto__/polluted",
      {
        method: "POST",
        options: ops({ do: [{ op: "inc", path: "/x/__proto__/polluted", value: 1 }] }),
        status: 400,
        code: "invalid-body",
      },
    ],
    [
      "ops condition on /__proto__",
      { method: "POST", options: ops({ if: [{ path: "/__proto__", op: "exists" }], do: [] }), status: 400, code: "invalid-body" },
    ],
    [
      "ops append a value with __proto__",
      {
        method: "POST",
        options: raw('{"do":[{"op":"append","path":"/list","value":{"__proto__":{"polluted":1}}}]}'),
        status: 400,
        code: "invalid-body",
      },
    ],
    [
      "ops set a value with __proto__",
      {
        method: "POST",
        options: raw('{"do":[{"op":"set","path":"","value":{"__proto__":{"polluted":1}}}]}'),
        status: 400,
        code: "invalid-body",
      },
    ],
    [
      "ops eq against a value with __proto__",
      {
        method: "POST",
        options: raw('{"if":[{"path":"/a","op":"eq","value":{"__proto__":{}}}],"do":[]}'),
        status: 400,
        code: "invalid-body",
      },
    ],
  ];

  it.each(cases)("%s", async (_name, { method, options, status, code }) => {
    expectProblem(
      await sendAtVictim(method, { ...options, headers: { ...options.headers, "idempotency-key": "hostile" } }),
      status,
      code,
    );
    await expectVictimUnchanged();
    // Refused requests record nothing: the same key is free for a new request.
    const reuse = await sendAtVictim("POST", {
      ...ops({ do: [] }),
      headers: { "content-type": "application/json", "idempotency-key": "hostile" },
    });
    expect({ status: reuse.status, replayed: reuse.headers["idempotent-replayed"] }).toEqual({
      status: 200,
      replayed: undefined,
    });
  });

  it("an upsert with a __proto__ path creates nothing", async () => {
    const path = "/v1/entities/victim/fresh";
    expectProblem(
      await send(url, "POST", `${path}/ops`, ops({ do: [{ op: "set", path: "/__proto__/polluted", value: 1 }], upsert: true })),
      400,
      "invalid-body",
    );
    expectProblem(await send(url, "GET", path), 404, "entity-not-found");
    expect((await listAll(url, "victim", "f", 100)).map((item) => item.id)).toEqual([]);
    await expectVictimUnchanged();
  });
});

describe("constructor and prototype are ordinary data", () => {
  const path = "/v1/entities/proto/plain";
  const cases: [string, SendOptions, string, unknown][] = [
    [
      "PUT",
      jsonRequest({ constructor: { prototype: { polluted: 1 } }, prototype: 2 }),
      "PUT",
      { constructor: { prototype: { polluted: 1 } }, prototype: 2 },
    ],
    [
      "merge patch",
      mergePatch('{"constructor":{"prototype":{"polluted":1}}}'),
      "PATCH",
      { constructor: { prototype: { polluted: 1 } } },
    ],
    [
      "JSON Patch",
      jsonPatch([{ op: "add", path: "/constructor", value: { prototype: { polluted: 1 } } }]),
      "PATCH",
      { constructor: { prototype: { polluted: 1 } } },
    ],
    [
      "ops creating parents",
      ops({ do: [{ op: "set", path: "/constructor/prototype/polluted", value: 1 }], upsert: true }),
      "POST",
      { constructor: { prototype: { polluted: 1 } } },
    ],
  ];

  it.each(cases)("%s stores them as members", async (_name, options, method, data) => {
    await send(url, "DELETE", path);
    if (method === "PATCH") expect((await send(url, "PUT", path, jsonRequest({}))).status).toBeLessThan(300);
    const reply = await send(url, method, method === "POST" ? `${path}/ops` : path, options);
    expect(reply.status, reply.text).toBeLessThan(300);
    expect((bodyOf(await send(url, "GET", path)) as { data: unknown }).data).toEqual(data);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTOTYPE_KEYS);
  });

  it("an inherited member is never found: /constructor on {} does not exist", async () => {
    expect((await send(url, "PUT", path, jsonRequest({}))).status).toBeLessThan(300);
    const before = bodyOf(await send(url, "GET", path)) as { version: number };
    expectProblem(
      await send(url, "PATCH", path, jsonPatch([{ op: "replace", path: "/constructor", value: 1 }])),
      409,
      "patch-conflict",
    );
    expectProblem(
      await send(url, "PATCH", path, jsonPatch([{ op: "add", path: "/toString/x", value: 1 }])),
      409,
      "patch-conflict",
    );
    expectProblem(
      await send(url, "POST", `${path}/ops`, ops({ if: [{ path: "/constructor", op: "exists" }], do: [] })),
      409,
      "condition-failed",
    );
    expect(bodyOf(await send(url, "GET", path))).toMatchObject({ version: before.version, data: {} });
  });
});

describe("JSON Pointers: escapes, empty and very long paths", () => {
  it("~1 and ~0 name the members they escape", async () => {
    const reply = await send(
      url,
      "PATCH",
      victim,
      jsonPatch([
        { op: "test", path: "/a~1b", value: 2 },
        { op: "test", path: "/m~0n", value: 3 },
      ]),
    );
    expect(reply.status).toBe(200);
    expect(bodyOf(reply)).toMatchObject({ version: 2, data: VICTIM_DATA });
  });

  const bad: Case[] = [
    [
      "a bad escape ~2",
      { method: "PATCH", options: jsonPatch([{ op: "remove", path: "/a~2b" }]), status: 400, code: "invalid-body" },
    ],
    ["a trailing ~", { method: "PATCH", options: jsonPatch([{ op: "remove", path: "/a~" }]), status: 400, code: "invalid-body" }],
    [
      "no leading slash",
      { method: "POST", options: ops({ do: [{ op: "remove", path: "a" }] }), status: 400, code: "invalid-body" },
    ],
    [
      "removing the whole document",
      { method: "PATCH", options: jsonPatch([{ op: "remove", path: "" }]), status: 409, code: "patch-conflict" },
    ],
    [
      "inc of the whole document",
      { method: "POST", options: ops({ do: [{ op: "inc", path: "", value: 1 }] }), status: 409, code: "patch-conflict" },
    ],
    [
      "a path over 4096 characters",
      {
        method: "POST",
        options: ops({ do: [{ op: "set", path: `/${"x".repeat(4096)}`, value: 1 }] }),
        status: 400,
        code: "invalid-body",
      },
    ],
    [
      "2000 segments nesting too deep",
      {
        method: "POST",
        options: ops({ do: [{ op: "set", path: "/a".repeat(2000), value: 1 }] }),
        status: 409,
        code: "patch-conflict",
      },
    ],
    [
      "an array index with a leading zero",
      {
        method: "PATCH",
        options: jsonPatch([{ op: "replace", path: "/list/00", value: 1 }]),
        status: 409,
        code: "patch-conflict",
      },
    ],
    [
      "an array index far beyond the end",
      {
        method: "POST",
        options: ops({ do: [{ op: "set", path: "/list/99999999999", value: 1 }] }),
        status: 409,
        code: "patch-conflict",
      },
    ],
  ];

  it.each(bad)("%s is refused", async (_name, { method, options, status, code }) => {
    expectProblem(await sendAtVictim(method, options), status, code);
    await expectVictimUnchanged();
  });
});

describe("nesting and numbers", () => {
  const nested = (depth: number) => `${'{"a":'.repeat(depth - 1)}{}${"}".repeat(depth - 1)}`;

  it("64 levels are stored, 65 are refused", async () => {
    expect((await send(url, "PUT", "/v1/entities/deep/ok", raw(nested(64)))).status).toBe(201);
    expectProblem(await send(url, "PUT", victim, raw(nested(65))), 400, "invalid-body");
    await expectVictimUnchanged();
  });

  const hostile: [string, SendOptions, string][] = [
    ["100,000 nested arrays in a PUT", raw(`{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}`), "PUT"],
    ["500,000 unclosed brackets", raw(`{"a":${"[".repeat(500_000)}`), "PUT"],
    ["a deep merge patch", mergePatch(nested(200)), "PATCH"],
    ["a deep ops value", raw(`{"do":[{"op":"set","path":"/x","value":${"[".repeat(5000)}${"]".repeat(5000)}}]}`), "POST"],
  ];

  it.each(hostile)("%s: 400, and the server still answers", async (_name, options, method) => {
    expectProblem(await sendAtVictim(method, options), 400, "invalid-body");
    expect((await send(url, "GET", "/healthz")).status).toBe(200);
    await expectVictimUnchanged();
  });

  const numbers: [string, string, number, string][] = [
    ["inc to 2^53", '{"do":[{"op":"inc","path":"/n","value":2}]}', 409, "patch-conflict"],
    ["inc by 2^53", '{"do":[{"op":"inc","path":"/x","value":9007199254740992}]}', 409, "patch-conflict"],
    ["inc by an unrepresentable integer", '{"do":[{"op":"inc","path":"/x","value":9007199254740993}]}', 409, "patch-conflict"],
    ["inc by 1e308", '{"do":[{"op":"inc","path":"/x","value":1e308}]}', 409, "patch-conflict"],
    ["inc by 1e400 (Infinity)", '{"do":[{"op":"inc","path":"/x","value":1e400}]}', 400, "invalid-body"],
    ["inc by -1e400", '{"do":[{"op":"inc","path":"/x","value":-1e400}]}', 400, "invalid-body"],
    ["inc by a string", '{"do":[{"op":"inc","path":"/x","value":"1"}]}', 400, "invalid-body"],
    [
      "inc of a string member",
      '{"do":[{"op":"inc","path":"/a~1b","value":1},{"op":"inc","path":"/list","value":1}]}',
      409,
      "patch-conflict",
    ],
  ];

  it.each(numbers)("%s is refused", async (_name, body, status, code) => {
    expectProblem(await sendAtVictim("POST", raw(body)), status, code);
    await expectVictimUnchanged();
  });

  it("the largest safe step is fine", async () => {
    const reply = await sendAtVictim("POST", raw('{"do":[{"op":"inc","path":"/n","value":1}]}'));
    expect(bodyOf(reply)).toMatchObject({ version: 2, data: { n: Number.MAX_SAFE_INTEGER } });
  });
});

describe("entity keys", () => {
  const EVERY_ALLOWED = "AZaz09._~:@!$'()*+,;=-";

  it("an id with every allowed character round-trips", async () => {
    const path = `/v1/entities/keys/${EVERY_ALLOWED}`;
    const created = await send(url, "PUT", path, jsonRequest({ ok: true }));
    expect(created.status, created.text).toBe(201);
    expect(created.headers.location).toBe(`/v1/entities/keys/${encodeURIComponent(EVERY_ALLOWED)}`);
    expect(bodyOf(await send(url, "GET", created.headers.location!))).toMatchObject({ id: EVERY_ALLOWED, version: 1 });
    expect((await listAll(url, "keys", "", 10)).map((item) => item.id)).toEqual([EVERY_ALLOWED]);
  });

  it("a percent-encoded allowed character is the same id", async () => {
    expect((await send(url, "PUT", "/v1/entities/keys/B", jsonRequest({ n: 1 }))).status).toBe(201);
    expect(bodyOf(await send(url, "GET", "/v1/entities/keys/%42"))).toMatchObject({ id: "B", version: 1 });
    expect((await send(url, "PUT", "/v1/entities/keys/%42", jsonRequest({ n: 2 }))).status).toBe(200);
  });

  it("a 255-character id is fine", async () => {
    expect((await send(url, "PUT", `/v1/entities/keys/${"k".repeat(255)}`, jsonRequest({}))).status).toBe(201);
  });

  const disallowed = [
    "%20",
    "a%2Fb",
    "%25",
    "%3F",
    "%23",
    "%22",
    "%3C",
    "%3E",
    "%5B",
    "%5D",
    "%7B",
    "%7D",
    "%7C",
    "%5C",
    "%5E",
    "%60",
    "%00",
    "a%0Ab",
    "%7F",
    "%C3%A9",
    "%F0%9F%98%80",
    "%E2%80%8B",
    "%EF%BC%A1",
    `${"k".repeat(256)}`,
  ];

  it.each(disallowed)("id %s is refused with invalid-key, and nothing is created", async (id) => {
    expectProblem(await send(url, "PUT", `/v1/entities/badkeys/${id}`, jsonRequest({})), 400, "invalid-key");
    expectProblem(await send(url, "POST", `/v1/entities/badkeys/${id}/ops`, ops({ do: [], upsert: true })), 400, "invalid-key");
    expect(await listAll(url, "badkeys", "", 10)).toEqual([]);
  });

  it.each(["%ZZ", "%C3", "%E2%80", "a%"])("malformed percent-encoding %s is a 400 problem", async (id) => {
    const reply = await send(url, "PUT", `/v1/entities/badkeys/${id}`, jsonRequest({}));
    expect(reply.status).toBe(400);
    expect(reply.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(await listAll(url, "badkeys", "", 10)).toEqual([]);
  });

  it.each(["Account", "1abc", "a".repeat(64), "a%2Fb", "a.b", "%C3%A9t%C3%A9"])(
    "type %s is refused with invalid-key",
    async (type) => {
      expectProblem(await send(url, "PUT", `/v1/entities/${type}/x`, jsonRequest({})), 400, "invalid-key");
    },
  );
});

describe("list prefixes and cursors", () => {
  beforeAll(async () => {
    for (const id of ["a_b", "axb", "a.b", "aXb", "b"]) {
      expect((await send(url, "PUT", `/v1/entities/listed/${id}`, jsonRequest({}))).status).toBe(201);
    }
    expect((await send(url, "PUT", "/v1/entities/other/a_b", jsonRequest({}))).status).toBe(201);
  });

  it("_ in a prefix is literal, not a wildcard", async () => {
    expect((await listAll(url, "listed", "a_", 10)).map((item) => item.id)).toEqual(["a_b"]);
    expect((await listAll(url, "listed", "a.", 10)).map((item) => item.id)).toEqual(["a.b"]);
  });

  it.each(["%25", "a%25", "%25b", "%"])("prefix %s is refused: no id can hold %", async (prefix) => {
    const reply = await send(url, "GET", `/v1/entities/listed?prefix=${prefix}`);
    expect(reply.status).toBe(400);
    expect(reply.headers["content-type"]).toMatch(/^application\/problem\+json/);
  });

  async function cursorFor(type: string, prefix: string): Promise<string> {
    const reply = await send(url, "GET", `/v1/entities/${type}?limit=1${prefix ? `&prefix=${prefix}` : ""}`);
    return (bodyOf(reply) as { nextCursor: string }).nextCursor;
  }

  it("forged, damaged and foreign cursors are refused", async () => {
    const good = await cursorFor("listed", "");
    const [payload, signature] = good.split(".") as [string, string];
    const flipped = `${payload}.${signature.startsWith("A") ? "B" : "A"}${signature.slice(1)}`;
    const forgedPayload = Buffer.from(JSON.stringify(["listed", "", ""])).toString("base64url");
    const cursors: [string, string, string][] = [
      ["garbage", "listed", "not-a-cursor"],
      ["three parts", "listed", `${good}.x`],
      ["a flipped signature byte", "listed", flipped],
      ["a forged payload with the old signature", "listed", `${forgedPayload}.${signature}`],
      ["a cursor of another type", "other", good],
      ["a cursor of another prefix", "listed", good],
    ];
    for (const [name, type, cursor] of cursors) {
      const query = `cursor=${encodeURIComponent(cursor)}${name.includes("prefix") ? "&prefix=a" : ""}`;
      expectProblem(await send(url, "GET", `/v1/entities/${type}?${query}`), 400, "invalid-cursor");
    }
    const next = await send(url, "GET", `/v1/entities/listed?cursor=${encodeURIComponent(good)}&limit=1`);
    expect(next.status).toBe(200);
  });

  it("an empty or overlong cursor is a bad query", async () => {
    expectProblem(await send(url, "GET", "/v1/entities/listed?cursor="), 400, "invalid-query");
    expectProblem(await send(url, "GET", `/v1/entities/listed?cursor=${"a".repeat(3000)}`), 400, "invalid-query");
  });
});

describe("admin shard numbers and backups", () => {
  // Other tests share the temp folder, so only names a traversal could have made are compared.
  const outside = () => readdirSync(dirname(testApp.dataDir)).filter((file) => /evil|passwd|shard|backup/.test(file));

  it.each([
    "..%2F..%2Fetc%2Fpasswd",
    "..",
    "-1",
    "1.5",
    "0x1",
    "0b1",
    "+1",
    "%201",
    "1e1",
    "99999999999999999999",
    "%00",
    "0%2F..",
    "4",
  ])("shard %s is refused, and no backup is written", async (shard) => {
    const before = outside();
    for (const [method, suffix] of [
      ["GET", ""],
      ["GET", "/entities"],
      ["POST", "/check"],
      ["POST", "/backup"],
    ] as const) {
      const reply = await send(url, method, `/admin/shards/${shard}${suffix}`);
      expect([400, 404], `${method} ${shard}${suffix}: ${reply.text}`).toContain(reply.status);
      expect(reply.headers["content-type"]).toMatch(/^application\/problem\+json/);
    }
    expect(outside()).toEqual(before);
    expect(readdirSync(testApp.dataDir).filter((file) => file === "backups")).toEqual([]);
  });

  it("a backup cannot be given a name: a query or body naming one is refused or ignored", async () => {
    const before = outside();
    const query = await send(url, "POST", "/admin/shards/0/backup?file=..%2F..%2Fevil.sqlite");
    expectProblem(query, 400, "invalid-query");
    const body = await send(url, "POST", "/admin/shards/0/backup", jsonRequest({ file: "../../evil.sqlite" }));
    expectProblem(body, 415, "unsupported-media-type");
    expect(outside()).toEqual(before);
    const backups = join(testApp.dataDir, "backups");
    for (const file of existsSync(backups) ? readdirSync(backups) : []) {
      expect(file).toMatch(/^shard-000-seq\d{12}-\d{8}T\d{9}Z\.sqlite$/);
    }
  });
});

describe("header and body limits", () => {
  it("headers over 16 KiB are refused and the server carries on", async () => {
    const reply = await send(url, "GET", victim, { headers: { "x-filler": "x".repeat(20_000) } }).catch((error: Error) => error);
    if (!(reply instanceof Error)) expect(reply.status).toBe(431);
    expect((await send(url, "GET", "/healthz")).status).toBe(200);
  });

  it.each([
    ["an idempotency key of 256 characters", { "idempotency-key": "k".repeat(256) }, 400, "invalid-idempotency-key"],
    ["an idempotency key with a control character", { "idempotency-key": "a\tb" }, 400, "invalid-idempotency-key"],
    ["an If-Match of 2000 characters", { "if-match": `"${"1".repeat(2000)}"` }, 400, "invalid-body"],
  ] as const)("%s", async (_name, headers, status, code) => {
    const reply = await send(url, "PUT", "/v1/entities/limits/x", {
      ...jsonRequest({}),
      headers: { "content-type": "application/json", ...headers },
    });
    expect(reply.status, reply.text).toBe(status);
    if (code !== "invalid-body") expectProblem(reply, status, code);
    expectProblem(await send(url, "GET", "/v1/entities/limits/x"), 404, "entity-not-found");
  });

  it("a body over 1 MiB is 413, on every route with a body", async () => {
    const big = JSON.stringify({ pad: "x".repeat(1_048_576) });
    expectProblem(await send(url, "PUT", "/v1/entities/limits/big", raw(big)), 413, "payload-too-large");
    expectProblem(
      await send(url, "PATCH", "/v1/entities/limits/big", raw(big, "application/merge-patch+json")),
      413,
      "payload-too-large",
    );
    expectProblem(await send(url, "POST", "/v1/entities/limits/big/ops", raw(big)), 413, "payload-too-large");
    expectProblem(await send(url, "GET", "/v1/entities/limits/big"), 404, "entity-not-found");
  });
});

describe("slow, truncated and lying request bodies", () => {
  const head = (path: string, headers: string) =>
    `PUT ${path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n${headers}\r\n`;

  async function expectAbsent(id: string): Promise<void> {
    expectProblem(await send(url, "GET", `/v1/entities/slow/${id}`), 404, "entity-not-found");
  }

  /** Sends `request` on a connection of its own; the status of the answer within 2 s. */
  async function statusAnswering(request: string): Promise<number | undefined> {
    const connection = await RawConnection.open(url);
    connection.write(request);
    const response = await connection.response(2000);
    connection.destroy();
    return statusOf(response);
  }

  it("a body cut off by the client's close writes nothing", async () => {
    const connection = await RawConnection.open(url);
    connection.write(head("/v1/entities/slow/cut", "Content-Length: 100\r\n") + '{"a":');
    await sleep(100);
    connection.end();
    const response = await connection.response();
    if (response !== "") expect(statusOf(response)).toBe(400);
    await expectAbsent("cut");
  });

  it("a body abandoned by a reset connection writes nothing", async () => {
    const connection = await RawConnection.open(url);
    connection.write(head("/v1/entities/slow/reset", "Content-Length: 100\r\n") + '{"a":1,');
    await sleep(100);
    connection.destroy();
    await sleep(100);
    await expectAbsent("reset");
    expect((await send(url, "GET", "/healthz")).status).toBe(200);
  });

  it("trickling bodies hold only their own connections; other requests are served meanwhile", async () => {
    const body = JSON.stringify({ slow: true });
    const slow = await Promise.all(Array.from({ length: 8 }, () => RawConnection.open(url)));
    slow.forEach((connection, i) =>
      connection.write(head(`/v1/entities/slow/trickle${i}`, `Content-Length: ${body.length}\r\n`)),
    );
    for (const char of body.slice(0, -1)) {
      slow.forEach((connection) => connection.write(char));
      const started = Date.now();
      expect((await send(url, "GET", "/healthz")).status).toBe(200);
      expect(Date.now() - started).toBeLessThan(1000);
      await sleep(20);
    }
    await expectAbsent("trickle0");
    slow.forEach((connection) => connection.write(body.slice(-1)));
    for (const connection of slow) {
      await expect.poll(() => statusOf(connection.text)).toBe(201);
      connection.destroy();
    }
  });

  it("a Content-Length shorter than the body: the extra bytes are not a second request", async () => {
    expect(await statusAnswering(head("/v1/entities/slow/short", "Content-Length: 5\r\n") + '{"a":1}')).toBe(400);
    await expectAbsent("short");
  });

  /* The declared length alone refuses it: nothing is read, and the connection is closed. */
  it("a declared length over the limit is 413, and the body is never parsed", async () => {
    const connection = await RawConnection.open(url);
    const body = `{"a":"${"x".repeat(2_000_000)}"}`;
    connection.write(head("/v1/entities/slow/huge", `Content-Length: ${body.length}\r\n`) + body);
    await expect.poll(() => statusOf(connection.text), { timeout: 5000 }).toBe(413);
    expect(connection.text).toContain("payload-too-large");
    connection.destroy();
    await expectAbsent("huge");
  });

  it("a chunked body with a broken chunk writes nothing", async () => {
    const chunked = '5\r\n{"a":\r\nZZ\r\n1}\r\n0\r\n\r\n';
    expect(await statusAnswering(head("/v1/entities/slow/chunked", "Transfer-Encoding: chunked\r\n") + chunked)).toBe(400);
    await expectAbsent("chunked");
  });

  it("a chunked body over the limit is 413", async () => {
    const connection = await RawConnection.open(url);
    connection.write(head("/v1/entities/slow/chunkedbig", "Transfer-Encoding: chunked\r\n"));
    const chunk = "x".repeat(65_536);
    connection.write(`1\r\n[\r\n`);
    for (let i = 0; i < 20; i++) connection.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    connection.write("1\r\n]\r\n0\r\n\r\n");
    await expect.poll(() => statusOf(connection.text), { timeout: 5000 }).toBe(413);
    connection.destroy();
    await expectAbsent("chunkedbig");
  });
});
