import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { WriteQueue } from "../../server/storage/write-queue.js";

const open: Database.Database[] = [];
afterEach(() => open.splice(0).forEach((db) => db.close()));

function queue(afterCommit: () => Promise<void>) {
  const db = new Database(":memory:");
  open.push(db);
  db.exec("create table t (n integer)");
  const insert = db.prepare("insert into t (n) values (?)");
  const tx = { insert: (n: number) => insert.run(n) };
  const rows = () => (db.prepare("select count(*) as n from t").get() as { n: number }).n;
  return { rows, writes: new WriteQueue(db, tx, { afterCommit, busyTimeoutMs: 1000, translate: (error) => error }) };
}

describe("WriteQueue with afterCommit (the WAL fsync under --durability=power)", () => {
  it("acknowledges a batch only once afterCommit has resolved", async () => {
    let finishSync: () => void = () => undefined;
    const { rows, writes } = queue(() => new Promise<void>((resolve) => (finishSync = resolve)));
    let acknowledged = 0;
    const batch = [1, 2, 3].map((n) => writes.enqueue((tx) => tx.insert(n)).then(() => (acknowledged += 1)));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(rows()).toBe(3); // committed
    expect(acknowledged).toBe(0); // not yet durable, so not acknowledged
    finishSync();
    await Promise.all(batch);
    expect(acknowledged).toBe(3);
  });

  it("fails the batch's writes when afterCommit fails", async () => {
    const { writes } = queue(() => Promise.reject(new Error("EIO: fsync failed")));
    const results = await Promise.allSettled([writes.enqueue((tx) => tx.insert(1)), writes.enqueue((tx) => tx.insert(2))]);
    expect(results.map((result) => result.status)).toEqual(["rejected", "rejected"]);
    expect((results[0] as PromiseRejectedResult).reason).toMatchObject({ message: "EIO: fsync failed" });
  });
});
