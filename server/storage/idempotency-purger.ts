import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { ShardSet } from "./data-directory.js";

/** Told after every purge batch: which shard, how many records it deleted. */
export type PurgeListener = (shard: number, deleted: number) => void;

/** Records per batch: one short write transaction of a few milliseconds at most. */
const BATCH = 200;
/*
 * Between batches the purge lets go of the shard for a while. Writers in other processes wait
 * for the lock in SQLite's busy handler, which sleeps and polls; a purge that took the lock
 * straight back could keep them waiting.
 */
const PAUSE_MS = 20;
const INTERVAL_MS = 10_000;

/**
 * Deletes idempotency records older than the retention window in the background, in small
 * batches with pauses between them, so a purge never holds a shard's write lock for long and
 * a large backlog still drains (about 10 000 records a second per shard).
 *
 * @example
 * const purger = new IdempotencyPurger(shards, 24 * 3_600_000, logger, purgeMetrics(registry));
 * purger.start();
 * await purger.stop();
 */
export class IdempotencyPurger {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private stopped = false;

  constructor(
    private readonly shards: ShardSet,
    private readonly retentionMs: number,
    private readonly logger: Logger,
    private readonly onBatch: PurgeListener = () => {},
  ) {}

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => {
      this.running ??= this.purgeExpired().finally(() => (this.running = undefined));
    }, INTERVAL_MS);
    this.timer.unref();
  }

  /** Stops the timer and waits for a pass in progress, which ends after its current batch. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** One pass over every shard until no expired record is left; returns how many it deleted. */
  async purgeExpired(now = Date.now()): Promise<number> {
    const before = now - this.retentionMs;
    let total = 0;
    for (const shard of this.shards.shards) {
      if (this.stopped) break;
      const number = shard.placement.shard;
      for (;;) {
        let deleted: number;
        try {
          deleted = shard.purgeIdempotency(before, BATCH);
        } catch (error) {
          this.logger.warn({ err: error, shard: number }, "idempotency purge skipped a shard");
          break;
        }
        this.onBatch(number, deleted);
        total += deleted;
        if (deleted < BATCH || this.stopped) break;
        await sleep(PAUSE_MS);
      }
    }
    if (total > 0) this.logger.info({ purged: total }, "expired idempotency records purged");
    return total;
  }
}
