/**
 * The "limit" baseline `npm run bench` compares apostate with: the same URLs answered with the
 * same SQL on the same shard files, and nothing else — no validation, auth, request log,
 * metrics, write queue or cross-process locking. It shows how close apostate comes to what its
 * own stack (node:http, better-sqlite3) can do for the same work.
 *
 * Each worker copies the preloaded data directory and serves its own copy, so no write ever
 * waits for another process's lock. Connections use WAL and apostate's default
 * `synchronous = NORMAL` (`--durability process`). The document changes (`ops`, merge patch)
 * and the representation are apostate's own pure functions: that work is the request's, not
 * the stack's.
 *
 * Served: `GET /v1/entities/{type}/{id}` (point select), `PUT` (one upsert transaction that
 * bumps the version), `PATCH` (merge patch, read-modify-write), `POST …/ops` (read-modify-write
 * plus the idempotency row in one transaction when an `Idempotency-Key` is sent, the recorded
 * answer when the key exists), and `GET /v1/entities/{type}` (the first page of 100, merged by
 * id across the shards).
 *
 * @example
 * node --import tsx bench/limit-server.ts 2 /tmp/bench/data-100000 /tmp/bench/limit
 */
import { cpSync, readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { join } from "node:path";
import Database from "better-sqlite3";
import { slotOf } from "../schema/placement.js";
import type { JsonObject, OpsRequest } from "../server/documents/json-value.js";
import { applyMergePatch } from "../server/documents/merge-patch.js";
import { applyOps } from "../server/documents/ops.js";
import { entityJson, isLive, type LiveEntityRow } from "../server/entities/entity.js";
import type { EntityRow, IdempotencyRow } from "../server/storage/tables.js";
import { runCluster } from "./cluster.js";

const [workersArg, dataDir, workDir] = process.argv.slice(2);
const workers = Number(workersArg);
if (!Number.isInteger(workers) || workers < 1 || !dataDir || !workDir) {
  throw new Error("usage: limit-server.ts <workers> <preloaded data dir> <work dir>");
}

const PAGE_SIZE = 100;
const JSON_TYPE = "application/json; charset=utf-8";

/* The statements apostate's storage layer prepares (server/storage/shard.ts), as kysely compiles them. */
const SQL = {
  selectEntity: `select * from "entities" where "type" = @type and "id" = @id`,
  upsertEntity:
    `insert into "entities" ("type", "id", "slot", "version", "data", "created_at", "updated_at", "sequence") ` +
    `values (@type, @id, @slot, @version, @data, @created_at, @updated_at, @sequence) on conflict ("type", "id") do update set ` +
    `"version" = "excluded"."version", "data" = "excluded"."data", "created_at" = "excluded"."created_at", ` +
    `"updated_at" = "excluded"."updated_at", "sequence" = "excluded"."sequence"`,
  listEntities:
    `select "type", "id", "version", "data", "created_at", "updated_at" from "entities" where "type" = @type and "id" > @after and "id" >= @prefix and "id" < @upper ` +
    `and "data" is not null order by "id" limit @limit`,
  selectIdempotency: `select * from "idempotency" where "type" = @type and "id" = @id and "key" = @key`,
  insertIdempotency:
    `insert into "idempotency" ("type", "id", "key", "slot", "sequence", "fingerprint", "kind", "version", "representation", "created_at") ` +
    `values (@type, @id, @key, @slot, @sequence, @fingerprint, @kind, @version, @representation, @created_at)`,
  nextSequence: `update "shard_state" set "sequence" = sequence + 1, "last_write_at" = @now returning "sequence"`,
};

type Statements = Record<keyof typeof SQL, Database.Statement>;

interface LimitShard extends Statements {
  slots: { from: number; to: number };
  /** Runs `fn` in one `BEGIN IMMEDIATE` transaction, as apostate's writes do. */
  write<T>(fn: () => T): T;
}

/** The parts of the manifest read here. */
interface ManifestShards {
  shards: { file: string; slots: { from: number; to: number } }[];
}

function openShards(directory: string): LimitShard[] {
  const manifest = JSON.parse(readFileSync(join(directory, "manifest.json"), "utf8")) as ManifestShards;
  return manifest.shards.map(({ file, slots }) => {
    const db = new Database(join(directory, file), { fileMustExist: true });
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    const statements = Object.fromEntries(Object.entries(SQL).map(([name, text]) => [name, db.prepare(text)])) as Statements;
    const transaction = db.transaction((fn: () => unknown) => fn());
    return { ...statements, slots, write: <T>(fn: () => T) => transaction.immediate(fn) as T };
  });
}

class NotFound extends Error {}

function serve(shards: LimitShard[]) {
  const shardOf = (type: string, id: string): LimitShard => {
    const slot = slotOf(type, id);
    return shards.find(({ slots }) => slot >= slots.from && slot <= slots.to) as LimitShard;
  };

  const get = (type: string, id: string): LiveEntityRow => {
    const row = shardOf(type, id).selectEntity.get({ type, id }) as EntityRow | undefined;
    if (!isLive(row)) throw new NotFound();
    return row;
  };

  /** Writes `data` as the entity's next version, inside the caller's transaction. */
  const save = (shard: LimitShard, type: string, id: string, row: EntityRow | undefined, data: string): LiveEntityRow => {
    const now = new Date().toISOString();
    const { sequence } = shard.nextSequence.get({ now }) as { sequence: number };
    const next: LiveEntityRow = {
      type,
      id,
      slot: slotOf(type, id),
      version: (row?.version ?? 0) + 1,
      data,
      created_at: isLive(row) ? row.created_at : now,
      updated_at: now,
      sequence,
    };
    shard.upsertEntity.run(next);
    return next;
  };

  /** A read-modify-write of a live entity in one transaction. */
  const modify = (type: string, id: string, change: (data: JsonObject) => JsonObject, record?: (next: LiveEntityRow) => void) => {
    const shard = shardOf(type, id);
    return shard.write(() => {
      const row = shard.selectEntity.get({ type, id }) as EntityRow | undefined;
      if (!isLive(row)) throw new NotFound();
      const next = save(shard, type, id, row, JSON.stringify(change(JSON.parse(row.data) as JsonObject)));
      record?.(next);
      return next;
    });
  };

  const firstPage = (type: string): string => {
    const range = { type, after: "", prefix: "", upper: "\x7f", limit: PAGE_SIZE + 1 };
    const runs = shards.map((shard) => shard.listEntities.iterate(range) as IterableIterator<LiveEntityRow>);
    const heads = runs.map((run) => run.next());
    const rows: LiveEntityRow[] = [];
    try {
      while (rows.length <= PAGE_SIZE) {
        let smallest: number | undefined;
        heads.forEach((head, i) => {
          if (!head.done && (smallest === undefined || head.value.id < (heads[smallest]?.value as LiveEntityRow).id))
            smallest = i;
        });
        if (smallest === undefined) break;
        rows.push(heads[smallest]?.value as LiveEntityRow);
        heads[smallest] = (runs[smallest] as IterableIterator<LiveEntityRow>).next();
      }
    } finally {
      for (const run of runs) run.return?.();
    }
    const page = rows.slice(0, PAGE_SIZE);
    const nextCursor = rows.length > PAGE_SIZE ? (page.at(-1)?.id ?? null) : null;
    return `{"items":[${page.map(entityJson).join(",")}],"nextCursor":${JSON.stringify(nextCursor)}}`;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?", 1)[0] as string;
    const [, v1, entities, type, encodedId, suffix, ...rest] = path.split("/");
    if (v1 !== "v1" || entities !== "entities" || !type || rest.length > 0) throw new NotFound();
    if (encodedId === undefined) {
      if (req.method !== "GET") throw new NotFound();
      return answer(res, 200, firstPage(type));
    }
    const id = decodeURIComponent(encodedId);
    const key = req.headers["idempotency-key"];
    if (req.method === "POST" && suffix === "ops") {
      const text = await bodyOf(req);
      const request = JSON.parse(text) as OpsRequest;
      const shard = shardOf(type, id);
      if (typeof key !== "string")
        return answerEntity(
          res,
          modify(type, id, (data) => applyOps(data, request)),
        );
      const recorded = shard.selectIdempotency.get({ type, id, key }) as IdempotencyRow | undefined;
      if (recorded) {
        res.setHeader("Idempotent-Replayed", "true");
        if (recorded.version !== null) res.setHeader("ETag", `"${recorded.version}"`);
        return answer(res, 200, recorded.representation ?? "");
      }
      const next = modify(
        type,
        id,
        (data) => applyOps(data, request),
        (next) =>
          shard.insertIdempotency.run({
            type,
            id,
            key,
            slot: next.slot,
            sequence: next.sequence,
            // No digest: the limit keeps the request itself, about as long as apostate's SHA-256.
            fingerprint: `POST ${path}\n${text}`,
            kind: "updated",
            version: next.version,
            representation: entityJson(next),
            created_at: Date.now(),
          } satisfies IdempotencyRow),
      );
      return answerEntity(res, next);
    }
    if (suffix !== undefined) throw new NotFound();
    switch (req.method) {
      case "GET":
        return answerEntity(res, get(type, id));
      case "PUT": {
        const text = await bodyOf(req);
        JSON.parse(text);
        const shard = shardOf(type, id);
        const next = shard.write(() =>
          save(shard, type, id, shard.selectEntity.get({ type, id }) as EntityRow | undefined, text),
        );
        return answerEntity(res, next, next.version === 1 ? path : undefined);
      }
      case "PATCH": {
        const patch = JSON.parse(await bodyOf(req)) as JsonObject;
        return answerEntity(
          res,
          modify(type, id, (data) => applyMergePatch(data, patch)),
        );
      }
      default:
        throw new NotFound();
    }
  };

  return createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (error instanceof NotFound) answer(res, 404, '{"code":"not-found"}');
      else answer(res, 400, JSON.stringify({ code: "bad-request", detail: String(error) }));
    });
  });
}

function bodyOf(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function answerEntity(res: ServerResponse, row: LiveEntityRow, location?: string): void {
  res.setHeader("ETag", `"${row.version}"`);
  if (location) res.setHeader("Location", location);
  answer(res, location ? 201 : 200, entityJson(row));
}

function answer(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "Content-Type": JSON_TYPE, "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

runCluster(workers, (index) => {
  const copy = join(workDir, `worker-${index}`);
  cpSync(dataDir, copy, { recursive: true });
  serve(openShards(copy)).listen(0, "127.0.0.1");
});
