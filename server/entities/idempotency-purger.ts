import type { Logger } from "pino";
import type { ShardSet } from "../storage/data-directory.js";

const BATCH = 500;
const INTERVAL_MS = 10_000;

/**
 * Deletes idempotency records older than the retention window, a small batch per shard per
 * tick, so a purge never holds a shard's write lock for long.
 */
export class IdempotencyPurger {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly shards: ShardSet,
    private readonly retentionMs: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.purgeOnce(), INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One pass over every shard; returns how many records it deleted. */
  purgeOnce(now = Date.now()): number {
    let purged = 0;
    for (const shard of this.shards.shards) {
      try {
        purged += shard.purgeIdempotency(now - this.retentionMs, BATCH);
      } catch (error) {
        this.logger.warn({ err: error, shard: shard.placement.shard }, "idempotency purge skipped");
      }
    }
    return purged;
  }
}
