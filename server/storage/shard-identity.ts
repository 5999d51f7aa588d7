import type Database from "better-sqlite3";
import type { ShardFence } from "./shard-fence.js";
import type { ShardPlacement } from "./shard.js";

/**
 * Makes a shard file the shard `placement` names, in one immediate transaction: the rows of
 * slots outside its range (entities, tombstones and idempotency records) are deleted with the
 * tallies kept right, and the identity (and, when given, the fence) is rewritten. The source of
 * a split keeps the lower half this way, and a copy becomes the shard it was made for. Running
 * it again changes nothing, so an interrupted change can simply be finished.
 */
export function rewriteIdentity(db: Database.Database, placement: ShardPlacement, fence?: ShardFence): void {
  const { shard, slots } = placement;
  const range = { from: slots.from, to: slots.to };
  db.transaction(() => {
    const live = db
      .prepare("select count(*) from entities where (slot < @from or slot > @to) and data is not null")
      .pluck()
      .get(range) as number;
    db.prepare("delete from entities where slot < @from or slot > @to").run(range);
    const records = db.prepare("delete from idempotency where slot < @from or slot > @to").run(range).changes;
    db.prepare(
      `update shard_state set shard = @shard, slot_from = @from, slot_to = @to,
         entities = entities - @live, idempotency_records = idempotency_records - @records`,
    ).run({ shard, ...range, live, records });
    if (fence) db.prepare("update shard_state set epoch = ?, frozen = ?").run(fence.epoch, Number(fence.frozen));
  }).immediate();
}
