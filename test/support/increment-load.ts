import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { checkIncrementHistory, type FinalCounter, type HistoryVerdict, type Increment } from "./increment-history.js";

export interface IncrementLoadOptions {
  /** The node URLs to send through; each attempt picks one at random (read on every attempt, so it may change). */
  urls: () => string[];
  /** The counters' ids, or how many counters there are (c0, c1, …). */
  counters: number | readonly string[];
  /** Concurrent senders. */
  concurrency: number;
  /** How long one increment is retried (same key) before its outcome is recorded as unknown. */
  deadlineMs?: number;
  token?: string;
}

const ATTEMPT_TIMEOUT_MS = 5_000;
/**
 * How long reading a counter back is retried while its owner answers 502 or 503: the lease TTL of
 * the test clusters many times over, so that a node that re-registers on a loaded machine is
 * waited for; the verdict is about what was applied, not how soon it can be read.
 */
const READ_RETRY_MS = 30_000;

/** What made an attempt end without an answer to record: retried with the same key. */
const RETRYABLE = new Set([408, 429, 502, 503, 504]);

/**
 * Keyed increments to counters through random nodes, as a history the checker can judge: each
 * increment has a unique `Idempotency-Key`, kept on every retry; 503, 502 and lost answers are
 * retried until the deadline, after which the increment's outcome is unknown. `stop()` lets the
 * senders finish what they hold and resolves to the history.
 *
 * @example
 * const load = IncrementLoad.start({ urls: () => cluster.urls(), counters: 20, concurrency: 8 });
 * await sleep(5_000);
 * const verdict = await load.verify(await load.stop());
 */
export class IncrementLoad {
  private readonly history: Increment[] = [];
  private running = true;
  private readonly senders: Promise<void>[];
  /** Acknowledgements by time, for figures such as the longest stretch without one. */
  readonly acknowledgedAt: number[] = [];
  /** Per increment that met at least one 503: how long from its first refusal until its answer. */
  readonly refusedForMs: number[] = [];
  private readonly counters: readonly string[];
  /** Counters given by number are this load's own, so loads one after another never mix their histories. */
  private readonly run = randomUUID().slice(0, 8);

  private constructor(private readonly options: IncrementLoadOptions) {
    const { counters } = options;
    this.counters = typeof counters === "number" ? Array.from({ length: counters }, (_, i) => `${this.run}-c${i}`) : counters;
    this.senders = Array.from({ length: options.concurrency }, () => this.send());
  }

  static start(options: IncrementLoadOptions): IncrementLoad {
    return new IncrementLoad(options);
  }

  get acknowledged(): number {
    return this.history.filter((increment) => increment.outcome.kind === "acknowledged").length;
  }

  async stop(): Promise<Increment[]> {
    this.running = false;
    await Promise.all(this.senders);
    return this.history;
  }

  /** Reads every counter back through `url` and checks the history against them. */
  async verify(url: string): Promise<HistoryVerdict> {
    const finals = new Map<string, FinalCounter>();
    for (const counter of this.counters) {
      const answer = await this.read(url, counter);
      if (answer.status === 404) continue;
      if (answer.status !== 200) throw new Error(`reading counter ${counter} answered ${answer.status}: ${await answer.text()}`);
      const entity = (await answer.json()) as { version: number; data: { n?: number } };
      finals.set(counter, { value: entity.data.n ?? 0, version: entity.version });
    }
    return checkIncrementHistory(this.history, finals);
  }

  /** A counter as `url` answers for it, retried for a while on 502 and 503 (an owner a moment away). */
  private async read(url: string, counter: string): Promise<Response> {
    const deadline = performance.now() + READ_RETRY_MS;
    for (;;) {
      const answer = await fetch(`${url}/v1/entities/counter/${counter}`, { headers: this.headers() });
      if (!RETRYABLE.has(answer.status) || performance.now() > deadline) return answer;
      await sleep(200);
    }
  }

  private headers(): Record<string, string> {
    return this.options.token ? { authorization: `Bearer ${this.options.token}` } : {};
  }

  private async send(): Promise<void> {
    while (this.running) {
      const counter = this.counters[Math.floor(Math.random() * this.counters.length)] as string;
      const key = randomUUID();
      this.history.push({ counter, key, outcome: await this.increment(counter, key) });
    }
  }

  private async increment(counter: string, key: string): Promise<Increment["outcome"]> {
    const deadline = performance.now() + (this.options.deadlineMs ?? 60_000);
    let firstRefusal: number | undefined;
    let sent = false;
    while (performance.now() < deadline) {
      const urls = this.options.urls();
      const url = urls[Math.floor(Math.random() * urls.length)];
      if (url === undefined) {
        await sleep(100);
        continue;
      }
      let status: number;
      let body: string;
      try {
        sent = true;
        const answer = await fetch(`${url}/v1/entities/counter/${counter}/ops`, {
          method: "POST",
          headers: { ...this.headers(), "content-type": "application/json", "idempotency-key": key },
          body: JSON.stringify({ do: [{ op: "inc", path: "/n", value: 1 }], upsert: true }),
          signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
        });
        status = answer.status;
        body = await answer.text();
      } catch {
        await sleep(50);
        continue;
      }
      if (status === 200 || status === 201) {
        const now = performance.now();
        this.acknowledgedAt.push(now);
        if (firstRefusal !== undefined) this.refusedForMs.push(now - firstRefusal);
        return { kind: "acknowledged", version: (JSON.parse(body) as { version: number }).version };
      }
      if (!RETRYABLE.has(status)) return { kind: "refused" };
      if (status === 503) firstRefusal ??= performance.now();
      await sleep(status === 503 ? 100 : 50);
    }
    return sent ? { kind: "unknown" } : { kind: "refused" };
  }
}

export type { HistoryVerdict };
