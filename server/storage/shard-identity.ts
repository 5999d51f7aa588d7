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
    const held = db.prepare('select slot_from as "from", slot_to as "to" from shard_state').get() as typeof range;
    // A copy of a whole shard holds nothing outside its range: skip the scans (the idempotency
    // table has no slot index), which would otherwise hold up the first writes after a move.
    const narrowed = held.from < range.from || held.to > range.to;
    // Two ranges, not one `or`: each is a range scan of the slot index.
    const live = narrowed
      ? (db
          .prepare(
            `select (select count(*) from entities where slot < @from and data is not null)
                  + (select count(*) from entities where slot > @to and data is not null)`,
          )
          .pluck()
          .get(range) as number)
      : 0;
    if (narrowed) {
      db.prepare("delete from entities where slot < @from").run(range);
      db.prepare("delete from entities where slot > @to").run(range);
    }
    const records = narrowed ? db.prepare("delete from idempotency where slot < @from or slot > @to").run(range).changes : 0;
    db.prepare(
      `update shard_state set shard = @shard, slot_from = @from, slot_to = @to,
         entities = entities - @live, idempotency_records = idempotency_records - @records`,
    ).run({ shard, ...range, live, records });
    // A copy installed here was seeded, not fed by its owner's write path: it is not in sync yet.
    if (fence) {
      db.prepare("update shard_state set epoch = ?, frozen = ?, followers = ?, synced = 0").run(
        fence.epoch,
        Number(fence.frozen),
        JSON.stringify([...fence.followers].sort()),
      );
    }
  }).immediate();
}
