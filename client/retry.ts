/**
 * When and how long to wait before sending a request again. Pure: the clock and the randomness
 * come in as arguments, so every rule can be tested on its own.
 */

/**
 * How a call retries. Every field has a default ({@link DEFAULT_RETRY}).
 *
 * @example
 * const patient: RetryOptions = { maxAttempts: 10, baseDelayMs: 50, maxDelayMs: 2_000, deadlineMs: 60_000 };
 */
export interface RetryOptions {
  /** Attempts in all, the first one included. */
  maxAttempts: number;
  /** The backoff ceiling of the first retry; it doubles with each further retry. */
  baseDelayMs: number;
  /** The backoff ceiling never grows beyond this. */
  maxDelayMs: number;
  /** The whole call (every attempt and every wait) ends by then; a wait that would cross it is not started. */
  deadlineMs: number;
}

/**
 * The defaults: 5 attempts, 100 ms doubling to at most 5 s, all within 30 s.
 *
 * @example
 * const db = createClient({ baseUrl, retry: { ...DEFAULT_RETRY, maxAttempts: 10 } });
 */
export const DEFAULT_RETRY: Readonly<RetryOptions> = Object.freeze({
  maxAttempts: 5,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
  deadlineMs: 30_000,
});

/**
 * What one attempt came to, as far as retrying is concerned.
 *
 * @example
 * const outcome: AttemptOutcome = { kind: "response", status: 503, retryAfter: "1" };
 */
export type AttemptOutcome =
  { kind: "response"; status: number; retryAfter?: string | null } | { kind: "network-error" } | { kind: "timeout" };

/**
 * Statuses that say "try again later" without anything having been applied: 408 and 429 by
 * definition, 502/503/504 because apostate commits nothing on a failed request (and a gateway
 * that loses the answer is covered by the idempotency key).
 *
 * @example
 * RETRYABLE_STATUSES.has(429); // true
 */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 502, 503, 504]);

/**
 * Whether an attempt's outcome may be retried at all. Other 4xx are the caller's to fix, and a
 * 500 is a server bug that repeating would only repeat.
 *
 * @example
 * isRetryable({ kind: "response", status: 503 }); // true
 * isRetryable({ kind: "response", status: 409 }); // false
 */
export function isRetryable(outcome: AttemptOutcome): boolean {
  return outcome.kind !== "response" || RETRYABLE_STATUSES.has(outcome.status);
}

/**
 * A `Retry-After` value (RFC 9110 §10.2.3: delay-seconds or an HTTP date) in milliseconds from
 * `nowMs`; `null` when absent or unreadable. A date in the past means "now".
 *
 * @example
 * parseRetryAfter("2", Date.now()); // 2000
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Every HTTP-date form names the month; without the check Date.parse reads "-1" as a year.
  if (!/[A-Za-z]/.test(text)) return null;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/**
 * Where a call stands after an attempt.
 *
 * @example
 * const state: RetryState = { attempts: 2, elapsedMs: 340, nowMs: Date.now() };
 */
export interface RetryState {
  /** Attempts made so far, the one that just ended included (≥ 1). */
  attempts: number;
  /** Time since the call started. */
  elapsedMs: number;
  /** The wall clock, for a `Retry-After` that is a date. */
  nowMs: number;
}

/**
 * How long to wait before the next attempt, or `null` to give up now.
 *
 * The backoff is "full jitter": a uniform draw from `[0, min(maxDelayMs, baseDelayMs · 2^(n-1)))`
 * for the n-th retry, which spreads clients that failed together. A `Retry-After` is a floor
 * (the server asked for at least that long) and is not capped by `maxDelayMs`; only the
 * deadline bounds it, and a wait that would end past the deadline is not worth starting.
 *
 * @example
 * retryDelay({ kind: "response", status: 503, retryAfter: "1" }, { attempts: 1, elapsedMs: 20, nowMs: Date.now() }, DEFAULT_RETRY);
 * // ≥ 1000
 */
export function retryDelay(
  outcome: AttemptOutcome,
  state: RetryState,
  options: RetryOptions,
  random: () => number = Math.random,
): number | null {
  if (!isRetryable(outcome) || state.attempts >= options.maxAttempts) return null;
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (state.attempts - 1));
  const backoff = random() * ceiling;
  const retryAfter = outcome.kind === "response" ? parseRetryAfter(outcome.retryAfter, state.nowMs) : null;
  const delay = retryAfter === null ? backoff : Math.max(retryAfter, backoff);
  return state.elapsedMs + delay < options.deadlineMs ? delay : null;
}
