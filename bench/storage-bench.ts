/**
 * `npm run bench:storage`: the storage layer in-process, without HTTP, against raw better-sqlite3
 * prepared statements running the same SQL on the same files, as a ratio.
 *
 * @example
 * npm run bench:storage -- --entities 100000 --duration 3
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { slotOf } from "../schema/placement.js";
import { entityJson, type LiveEntityRow } from "../server/entities/entity.js";
import { EntityStore } from "../server/entities/entity-store.js";
import { openDataDirectory } from "../server/storage/data-directory.js";
import type { ShardTransaction } from "../server/storage/shard.js";
import type { EntityRow } from "../server/storage/tables.js";
import { preload } from "./preload.js";
import { ENTITY_TYPE, entityData, entityId } from "./workload.js";

const { values: args } = parseArgs({
  options: {
    entities: { type: "string", default: "100000" },
    duration: { type: "string", default: "3" },
  },
});
const ENTITIES = Number(args.entities);
const SECONDS = Number(args.duration);
const KEYS = 65_536;
/** Rows in a follower's batch: about what one group commit of the replication bench's owner ships. */
const REPLICA_BATCH = 9;

interface Case {
  name: string;
  opsPerSecond: number;
  /** ops/s as a share of the raw better-sqlite3 case it is compared with. */
  ratio: number | null;
}

/**
 * Runs `op(i)` for i = 0, 1, … for the given time, in blocks of 100 between clock checks; an op
 * that returns a promise (the server's write path) has its block awaited before the next.
 */
async function opsPerSecond(op: (i: number) => unknown): Promise<number> {
  const block = async (from: number) => {
    const results = [];
    for (let i = from; i < from + 100; i += 1) results.push(op(i));
    await Promise.all(results);
  };
  for (let i = 0; i < 10_000; i += 100) await block(i);
  const end = performance.now() + SECONDS * 1000;
  let count = 0;
  while (performance.now() < end) {
    await block(count);
    count += 100;
  }
  return count / SECONDS;
}

const root = mkdtempSync(join(tmpdir(), "apostate-storage-bench-"));
try {
  const dataDir = join(root, "data");
  await preload(dataDir, ENTITIES);
  const shards = await openDataDirectory(dataDir, { shardCount: 8, durability: "process", busyTimeoutMs: 5000, verify: false });
  const store = new EntityStore(shards);

  // The same keys, in the same random order, for every case.
  const keys = Array.from({ length: KEYS }, () => {
    const id = entityId(Math.floor(Math.random() * ENTITIES));
    const slot = slotOf(ENTITY_TYPE, id);
    return { id, slot, shard: shards.shardAt(slot).placement.shard };
  });
  const key = (i: number) => keys[i % KEYS] as (typeof keys)[number];
  const data = JSON.stringify(entityData(0));

  // Raw: one connection per shard file with the storage layer's pragmas, and hand-written SQL.
  const raw = shards.shards.map((shard) => {
    const db = new Database(shard.file);
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("busy_timeout = 5000");
    return {
      db,
      select: db.prepare('select * from "entities" where "type" = @type and "id" = @id'),
      sequence: db.prepare('update "shard_state" set "sequence" = sequence + 1, "last_write_at" = @now returning "sequence"'),
      upsert: db.prepare(
        'insert into "entities" ("type", "id", "slot", "version", "data", "created_at", "updated_at", "sequence") ' +
          "values (@type, @id, @slot, @version, @data, @created_at, @updated_at, @sequence) " +
          'on conflict ("type", "id") do update set "version" = "excluded"."version", "data" = "excluded"."data", ' +
          '"created_at" = "excluded"."created_at", "updated_at" = "excluded"."updated_at", "sequence" = "excluded"."sequence"',
      ),
      selectRecord: db.prepare('select * from "idempotency" where "type" = @type and "id" = @id and "key" = @key'),
      insertRecord: db.prepare(
        'insert into "idempotency" ("type", "id", "key", "slot", "sequence", "fingerprint", "kind", "version", "representation", "created_at") ' +
          "values (@type, @id, @key, @slot, @sequence, @fingerprint, 'updated', @version, @representation, @created_at)",
      ),
    };
  });
  /** The row a write of `data` leaves, the same for the raw and the storage-layer paths. */
  const rowAfter = (row: EntityRow | undefined, id: string, slot: number, now: string, sequence: number): EntityRow => ({
    type: ENTITY_TYPE,
    id,
    slot,
    version: (row?.version ?? 0) + 1,
    data,
    created_at: row?.created_at ?? now,
    updated_at: now,
    sequence,
  });
  const rawWrite = raw.map(({ db, select, sequence, upsert }) =>
    db.transaction((id: string, slot: number) => {
      const row = select.get({ type: ENTITY_TYPE, id }) as EntityRow | undefined;
      const now = new Date().toISOString();
      upsert.run(rowAfter(row, id, slot, now, (sequence.get({ now }) as { sequence: number }).sequence));
    }),
  );

  // The keyed `ops` increment as the least hand-written code does it: look for the record, read,
  // parse, apply, serialise, save the entity and the record, one transaction per request.
  const rawKeyedIncrement = raw.map(({ db, select, sequence, upsert, selectRecord, insertRecord }) =>
    db.transaction((id: string, slot: number, key: string) => {
      if (selectRecord.get({ type: ENTITY_TYPE, id, key }) !== undefined) return;
      const row = select.get({ type: ENTITY_TYPE, id }) as EntityRow;
      const doc = JSON.parse(row.data ?? "{}") as { balance: number };
      doc.balance += 1;
      const now = new Date().toISOString();
      const next = (sequence.get({ now }) as { sequence: number }).sequence;
      const saved = { ...row, slot, version: row.version + 1, data: JSON.stringify(doc), updated_at: now, sequence: next };
      upsert.run(saved);
      insertRecord.run({
        type: ENTITY_TYPE,
        id,
        key,
        slot,
        sequence: next,
        fingerprint: key,
        version: saved.version,
        representation: entityJson(saved as LiveEntityRow),
        created_at: Date.now(),
      });
    }),
  );
  const INCREMENT = { do: [{ op: "inc" as const, path: "/balance", value: 1 }] };

  const cases: Case[] = [];
  // Alternated and best of three each, so neither side gains from running second (warm caches)
  // or loses to another process's burst on a shared machine.
  const compare = async (name: string, rawName: string, op: (i: number) => unknown, rawOp: (i: number) => void) => {
    let rawOps = 0;
    let ops = 0;
    for (let round = 0; round < 3; round += 1) {
      rawOps = Math.max(rawOps, await opsPerSecond(rawOp));
      ops = Math.max(ops, await opsPerSecond(op));
    }
    cases.push({ name: rawName, opsPerSecond: rawOps, ratio: null }, { name, opsPerSecond: ops, ratio: ops / rawOps });
  };

  await compare(
    "point read: Shard.readEntity",
    "point read: raw better-sqlite3",
    (i) => {
      const { id, shard } = key(i);
      shards.shards[shard]?.readEntity(ENTITY_TYPE, id);
    },
    (i) => {
      const { id, shard } = key(i);
      raw[shard]?.select.get({ type: ENTITY_TYPE, id });
    },
  );
  await compare(
    "point read: EntityStore.get (+ placement)",
    "point read: raw better-sqlite3",
    (i) => {
      store.get(ENTITY_TYPE, key(i).id);
    },
    (i) => {
      const { id, shard } = key(i);
      raw[shard]?.select.get({ type: ENTITY_TYPE, id });
    },
  );

  const rawWrite1 = (i: number) => {
    const { id, slot, shard } = key(i);
    rawWrite[shard]?.immediate(id, slot);
  };
  const saveNext = (tx: ShardTransaction, id: string, slot: number) => {
    const row = tx.readEntity(ENTITY_TYPE, id);
    const now = new Date().toISOString();
    tx.saveEntity(rowAfter(row, id, slot, now, tx.nextSequence(now)), row);
  };
  await compare(
    "single write: Shard.write",
    "single write: raw better-sqlite3",
    (i) => {
      const { id, slot, shard } = key(i);
      shards.shards[shard]?.write((tx) => saveNext(tx, id, slot));
    },
    rawWrite1,
  );
  // The server's path: the shard's write queue, on its own no-wait connection.
  await compare(
    "single write: Shard.commitWrite",
    "single write: raw better-sqlite3",
    (i) => {
      const { id, slot, shard } = key(i);
      return shards.shards[shard]?.commitWrite((tx) => saveNext(tx, id, slot));
    },
    rawWrite1,
  );

  // Every request a new key, as a client's retried-once mutations are.
  let run = 0;
  await compare(
    "keyed ops: EntityStore.ops",
    "keyed ops: raw better-sqlite3",
    (i) => {
      const idempotency = { key: `k${(run += 1)}`, fingerprint: "inc" };
      return store.ops({ type: ENTITY_TYPE, id: key(i).id, preconditions: {}, idempotency }, INCREMENT);
    },
    (i) => {
      const { id, slot, shard } = key(i);
      rawKeyedIncrement[shard]?.immediate(id, slot, `k${(run += 1)}`);
    },
  );

  // A follower's side of replication: the rows of one of its owner's group commits (random keys
  // of one shard) in one transaction, against the same upserts by hand.
  const follower = shards.shards[0];
  const rawFollower = raw[0];
  if (!follower || !rawFollower) throw new Error("the bench needs shard 0");
  const ownKeys = keys.filter(({ shard }) => shard === 0);
  const batchRows = (i: number, after: number): EntityRow[] =>
    Array.from({ length: REPLICA_BATCH }, (_, n) => {
      const { id, slot } = ownKeys[(i * REPLICA_BATCH + n) % ownKeys.length] as (typeof keys)[number];
      const now = new Date().toISOString();
      return { ...rowAfter(undefined, id, slot, now, after + n + 1), version: after + n + 1 };
    });
  const rawApply = rawFollower.db.transaction((rows: EntityRow[]) => {
    for (const row of rows) rawFollower.upsert.run(row);
    rawFollower.sequence.get({ now: new Date().toISOString() });
  });
  await compare(
    `follower's batch of ${REPLICA_BATCH}: Shard.applyReplica`,
    `follower's batch of ${REPLICA_BATCH}: raw better-sqlite3`,
    (i) => {
      const { sequence: after, epoch } = follower.replicaState();
      const entities = batchRows(i, after);
      follower.applyReplica(epoch, { after, upTo: after + REPLICA_BATCH, entities, idempotency: [], frozen: false });
    },
    (i) => rawApply.immediate(batchRows(i, follower.replicaState().sequence)),
  );

  for (const { db } of raw) db.close();
  shards.close();

  const width = Math.max(...cases.map((c) => c.name.length));
  const lines = [
    `${"case".padEnd(width)}  ${"ops/s".padStart(9)}  × raw`,
    ...cases.map(
      (c) => `${c.name.padEnd(width)}  ${c.opsPerSecond.toFixed(0).padStart(9)}  ${c.ratio === null ? "" : c.ratio.toFixed(2)}`,
    ),
    "",
    `${availableParallelism()} cores, node ${process.version}; ${ENTITIES.toLocaleString("en")} entities in 8 shards, ${SECONDS} s per case, synchronous=NORMAL.`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  const resultsDir = new URL("results/", import.meta.url);
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(
    new URL(`storage-${new Date().toISOString().replaceAll(":", "-")}.json`, resultsDir),
    `${JSON.stringify({ entities: ENTITIES, seconds: SECONDS, cases }, null, 2)}\n`,
  );
} finally {
  rmSync(root, { recursive: true, force: true });
}
