export interface RestartBackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A worker that lived this long was healthy: the next death starts from `initialMs` again. */
  resetAfterMs: number;
}

export const WORKER_RESTART_BACKOFF: RestartBackoffOptions = { initialMs: 100, maxMs: 10_000, resetAfterMs: 60_000 };

/**
 * How long to wait before replacing a dead worker: `initialMs`, doubling with each death up to
 * `maxMs`, back to `initialMs` after a worker that lived `resetAfterMs`. A worker that dies at
 * once on every start (a bad disk, a full memory) is then restarted a few times a minute
 * instead of in a loop that burns the machine and floods the log.
 *
 * @example
 * const backoff = new RestartBackoff(WORKER_RESTART_BACKOFF);
 * setTimeout(() => cluster.fork(), backoff.next(Date.now() - startedAt));
 */
export class RestartBackoff {
  private deaths = 0;

  constructor(private readonly options: RestartBackoffOptions) {}

  /** The delay before replacing a worker that died after living `livedMs`. */
  next(livedMs: number): number {
    if (livedMs >= this.options.resetAfterMs) this.deaths = 0;
    const delay = Math.min(this.options.initialMs * 2 ** this.deaths, this.options.maxMs);
    this.deaths += 1;
    return delay;
  }
}
