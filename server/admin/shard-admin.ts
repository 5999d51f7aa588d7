import { slotOf } from "../../schema/placement.js";
import type { ShardSet } from "../storage/data-directory.js";
import { inspectOffThread } from "../storage/off-thread-inspection.js";
import type { Shard, ShardPlacement } from "../storage/shard.js";
import type { ShardKey, ShardStats } from "../storage/shard-inspection.js";
import { writeBackup, type BackupInfo } from "./backups.js";
import { decodeKeyCursor, encodeKeyCursor } from "./key-cursor.js";

/** One shard as `GET /admin/shards` lists it. */
export type ShardInfo = { shard: number; slots: ShardPlacement["slots"] } & ShardStats;

/** One page of a shard's keys; `nextCursor` is null on the last page. */
export interface KeyPage {
  items: ShardKey[];
  nextCursor: string | null;
}

/** Where a key lives, and whether an entity is there now. */
export interface Location {
  type: string;
  id: string;
  slot: number;
  shard: number;
  exists: boolean;
}

/** SQLite's integrity check of one shard: `ok` when it has no complaint. */
export interface CheckResult {
  shard: number;
  ok: boolean;
  messages: string[];
}

/** A shard number this data directory does not have. */
export class UnknownShardError extends Error {}

/** Joins a shard's placement with its figures. */
export function shardInfo(placement: ShardPlacement, stats: ShardStats): ShardInfo {
  return { shard: placement.shard, slots: { ...placement.slots }, ...stats };
}

/**
 * The operator's view of a served data directory: figures, keys, placement, checks and backups,
 * each read from the shard files themselves.
 */
export class ShardAdmin {
  constructor(private readonly shards: ShardSet) {}

  list(): ShardInfo[] {
    return this.shards.shards.map((shard) => shardInfo(shard.placement, shard.stats()));
  }

  info(shard: number): ShardInfo {
    const found = this.shard(shard);
    return shardInfo(found.placement, found.stats());
  }

  keys(shard: number, options: { limit: number; cursor?: string }): KeyPage {
    const after = options.cursor === undefined ? undefined : decodeKeyCursor(options.cursor);
    // One row beyond the page says whether there is another page.
    const rows = this.shard(shard).listKeys(after, options.limit + 1);
    const items = rows.slice(0, options.limit);
    const last = items.at(-1);
    return { items, nextCursor: rows.length > options.limit && last ? encodeKeyCursor(last) : null };
  }

  locate(type: string, id: string): Location {
    const slot = slotOf(type, id);
    const shard = this.shards.shardAt(slot);
    const row = shard.readEntity(type, id);
    return { type, id, slot, shard: shard.placement.shard, exists: row !== undefined && row.data !== null };
  }

  /** SQLite's integrity check, in a thread of its own so requests go on meanwhile. */
  async check(shard: number): Promise<CheckResult> {
    const messages = await inspectOffThread({ kind: "check", file: this.shard(shard).file });
    return { shard, ok: messages.length === 0, messages };
  }

  /** An online backup into the data directory's `backups/`, in a thread of its own. */
  backup(shard: number): Promise<BackupInfo> {
    const { file } = this.shard(shard);
    return writeBackup(this.shards.directory, shard, (destination) => inspectOffThread({ kind: "backup", file, destination }));
  }

  private shard(shard: number): Shard {
    const found = this.shards.get(shard);
    if (!found) {
      throw new UnknownShardError(`there is no shard ${shard}; this store has shards 0-${this.shards.shards.length - 1}`);
    }
    return found;
  }
}
