import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import request from "supertest";
import { afterAll, describe, expect, it } from "vitest";
import * as createShard from "../../schema/migrations/2026_11_26_000000_create_shard.js";
import * as idempotencyOutcomes from "../../schema/migrations/2026_12_02_000100_idempotency_outcomes.js";
import { slotOf } from "../../schema/placement.js";
import { answerOf } from "../support/answer.js";
import { expectProblem } from "../support/problem.js";
import { tempDir } from "../support/temp-dir.js";
import { createTestApp, type TestApp } from "../support/test-app.js";

/*
 * A data directory whose idempotency records were written by the first schema (HTTP answers:
 * status, ETag, Location, body; a fingerprint hashed with the path) is migrated to records of
 * write outcomes, and every keyed request sent again is replayed as it was first answered.
 */
const dir = tempDir();
afterAll(() => dir.remove());

interface KeyedRequest {
  method: "PUT" | "PATCH" | "POST" | "DELETE";
  /** As sent; the canonical path is what the first schema's fingerprint hashed. */
  path: string;
  canonicalPath: string;
  type: string;
  id: string;
  headers: Record<string, string>;
  body?: string;
}

const keyed = (
  method: KeyedRequest["method"],
  type: string,
  id: string,
  key: string,
  extra: { headers?: Record<string, string>; body?: object; ops?: boolean; sentId?: string } = {},
): KeyedRequest => {
  const suffix = extra.ops ? "/ops" : "";
  const contentType = method === "PATCH" ? "application/merge-patch+json" : "application/json";
  return {
    method,
    path: `/v1/entities/${type}/${extra.sentId ?? id}${suffix}`,
    canonicalPath: `/v1/entities/${type}/${encodeURIComponent(id)}${suffix}`,
    type,
    id,
    headers: {
      "Idempotency-Key": key,
      ...(extra.body && { "Content-Type": contentType }),
      ...extra.headers,
    },
    ...(extra.body && { body: JSON.stringify(extra.body) }),
  };
};

const inc = { do: [{ op: "inc", path: "/n", value: 1 }], upsert: true };
const REQUESTS: KeyedRequest[] = [
  keyed("PUT", "doc", "a", "create", { body: { n: 1 } }),
  keyed("PUT", "doc", "a", "replace", { body: { n: 2 }, headers: { "If-Match": '"1"' } }),
  keyed("PATCH", "doc", "a", "patch", { body: { m: 3 } }),
  keyed("POST", "counter", "c", "upsert", { body: inc, ops: true }),
  keyed("POST", "counter", "c", "inc", { body: inc, ops: true }),
  keyed("DELETE", "doc", "a", "delete"),
  keyed("PUT", "doc", "a@b", "encoded", { body: { n: 1 }, sentId: "a%40b" }),
];

function sendTo(t: TestApp, r: KeyedRequest): request.Test {
  const test = request(t.app)[r.method === "DELETE" ? "delete" : (r.method.toLowerCase() as "put" | "patch" | "post")](r.path);
  for (const [name, value] of Object.entries(r.headers)) test.set(name, value);
  return r.body === undefined ? test : test.send(r.body);
}

/** The fingerprint as the first schema's server recorded it. */
function formerFingerprint(r: KeyedRequest): string {
  const body = createHash("sha256")
    .update(r.body ?? "")
    .digest("hex");
  const parts = [r.method, r.canonicalPath, r.headers["If-Match"] ?? "", "", r.headers["Content-Type"] ?? "", body];
  return createHash("sha256").update(parts.join("\n")).digest("hex");
}

const shardFiles = () =>
  readdirSync(dir.path)
    .filter((file) => file.endsWith(".sqlite"))
    .map((file) => join(dir.path, file));

describe("migrating idempotency records to write outcomes", () => {
  it("replays requests recorded by the first schema byte for byte, and refuses their keys for other requests", async () => {
    const first = await createTestApp({ shardCount: 2, dataDir: dir.path });
    const answers = [];
    for (const r of REQUESTS) answers.push(await sendTo(first, r));
    first.close();
    expect(answers.map((answer) => answer.status)).toEqual([201, 200, 200, 201, 200, 204, 201]);

    // Each shard file back to the first schema, its records as the first schema's server wrote them.
    let oldRecords = 0;
    for (const file of shardFiles()) {
      const db = new Database(file);
      const keys = db.prepare("select type, id, key from idempotency").all() as { type: string; id: string; key: string }[];
      db.exec("drop table idempotency");
      // This migration and every later one run again (the later ones add only what is missing).
      db.prepare("delete from kysely_migration where name >= ?").run("2026_12_02_000100_idempotency_outcomes");
      await createShard.up(new Kysely({ dialect: new SqliteDialect({ database: db }) }));
      const insert = db.prepare(
        "insert into idempotency (type, id, key, fingerprint, status, etag, location, body, created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      );
      for (const { type, id, key } of keys) {
        const index = REQUESTS.findIndex((r) => r.type === type && r.id === id && r.headers["Idempotency-Key"] === key);
        const [r, answer] = [REQUESTS[index]!, answers[index]!];
        const { etag, location } = answer.headers as Record<string, string | undefined>;
        insert.run(
          type,
          id,
          key,
          formerFingerprint(r),
          answer.status,
          etag ?? null,
          location ?? null,
          answer.text || null,
          Date.now(),
        );
        oldRecords += 1;
      }
      db.close();
    }
    expect(oldRecords).toBe(REQUESTS.length);

    const migrated = await createTestApp({ shardCount: 2, dataDir: dir.path });
    try {
      for (const [index, r] of REQUESTS.entries()) {
        const replay = await sendTo(migrated, r);
        expect(replay.headers["idempotent-replayed"], r.path).toBe("true");
        expect(answerOf(replay)).toEqual(answerOf(answers[index]!));
      }
      const reused = await sendTo(migrated, { ...REQUESTS[0]!, body: JSON.stringify({ n: 9 }) });
      expectProblem(reused, 422, "idempotency-key-reused");
    } finally {
      migrated.close();
    }

    const rows = shardFiles().flatMap((file) => {
      const db = new Database(file, { readonly: true });
      try {
        return db.prepare("select type, id, key, slot, sequence, kind, version from idempotency").all() as {
          type: string;
          id: string;
          key: string;
          slot: number;
          sequence: number;
          kind: string;
          version: number | null;
        }[];
      } finally {
        db.close();
      }
    });
    const byKey = Object.fromEntries(rows.map((row) => [`${row.type}/${row.id}/${row.key}`, row]));
    expect(Object.keys(byKey)).toHaveLength(REQUESTS.length);
    expect(byKey["doc/a/create"]).toEqual({
      type: "doc",
      id: "a",
      key: "create",
      slot: slotOf("doc", "a"),
      sequence: 0,
      kind: "created",
      version: 1,
    });
    expect(byKey["doc/a/replace"]).toMatchObject({ kind: "updated", version: 2 });
    expect(byKey["counter/c/upsert"]).toMatchObject({ kind: "created", version: 1, slot: slotOf("counter", "c") });
    expect(byKey["doc/a/delete"]).toMatchObject({ kind: "deleted", version: null });
  });

  it("does nothing when run again on a file it has migrated", async () => {
    const [file] = shardFiles();
    const db = new Database(file!);
    try {
      const before = db.prepare("select * from idempotency order by type, id, key").all();
      await idempotencyOutcomes.up(new Kysely({ dialect: new SqliteDialect({ database: db }) }));
      expect(db.prepare("select * from idempotency order by type, id, key").all()).toEqual(before);
      expect(db.inTransaction).toBe(false);
    } finally {
      db.close();
    }
  });
});
