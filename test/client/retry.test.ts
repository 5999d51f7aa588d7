import { describe, expect, it } from "vitest";
import {
  isRetryable,
  parseRetryAfter,
  retryDelay,
  type AttemptOutcome,
  type RetryOptions,
  type RetryState,
} from "../../client/retry.js";

const POLICY: RetryOptions = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 300, deadlineMs: 10_000 };
const NOW = Date.parse("2026-01-01T00:00:00Z");
const MAX_RANDOM = 1 - Number.EPSILON;

const response = (status: number, retryAfter?: string): AttemptOutcome => ({ kind: "response", status, retryAfter });
const after = (attempts: number, elapsedMs = 0): RetryState => ({ attempts, elapsedMs, nowMs: NOW });

describe("isRetryable", () => {
  const cases: [string, AttemptOutcome, boolean][] = [
    ["a network error", { kind: "network-error" }, true],
    ["a timeout", { kind: "timeout" }, true],
    ["408", response(408), true],
    ["429", response(429), true],
    ["502", response(502), true],
    ["503", response(503), true],
    ["504", response(504), true],
    ["400", response(400), false],
    ["401", response(401), false],
    ["404", response(404), false],
    ["409", response(409), false],
    ["412", response(412), false],
    ["413", response(413), false],
    ["422", response(422), false],
    ["500", response(500), false],
  ];
  it.each(cases)("%s → %s", (_name, outcome, want) => {
    expect(isRetryable(outcome)).toBe(want);
  });
});

describe("parseRetryAfter", () => {
  const cases: [string, string | null | undefined, number | null][] = [
    ["absent", null, null],
    ["undefined", undefined, null],
    ["delay-seconds", "3", 3_000],
    ["zero", "0", 0],
    ["padded", " 2 ", 2_000],
    ["an HTTP date 5 s ahead", "Thu, 01 Jan 2026 00:00:05 GMT", 5_000],
    ["an HTTP date in the past", "Wed, 31 Dec 2025 23:59:00 GMT", 0],
    ["garbage", "soon", null],
    ["a negative number", "-1", null],
  ];
  it.each(cases)("%s", (_name, value, want) => {
    expect(parseRetryAfter(value, NOW)).toBe(want);
  });
});

describe("retryDelay", () => {
  const cases: [string, { outcome: AttemptOutcome; state: RetryState; random: number; want: number | null }][] = [
    ["never retries a 409", { outcome: response(409), state: after(1), random: 0.5, want: null }],
    ["never retries a 400 even with Retry-After", { outcome: response(400, "1"), state: after(1), random: 0.5, want: null }],
    ["first retry: jitter within base", { outcome: { kind: "network-error" }, state: after(1), random: 0.5, want: 50 }],
    ["second retry: ceiling doubles", { outcome: { kind: "timeout" }, state: after(2), random: 0.5, want: 100 }],
    ["full jitter may draw zero", { outcome: response(502), state: after(2), random: 0, want: 0 }],
    [
      "third retry: the ceiling stops at maxDelayMs (not 400)",
      { outcome: response(503), state: after(3), random: 0.5, want: 150 },
    ],
    ["…and stays there", { outcome: response(429), state: after(4), random: MAX_RANDOM, want: 300 * MAX_RANDOM }],
    ["out of attempts", { outcome: response(503), state: after(5), random: 0.5, want: null }],
    ["Retry-After is a floor over the jitter", { outcome: response(503, "2"), state: after(1), random: 0.5, want: 2_000 }],
    ["Retry-After is not capped by maxDelayMs", { outcome: response(429, "5"), state: after(1), random: 0.5, want: 5_000 }],
    [
      "Retry-After as a date",
      { outcome: response(503, "Thu, 01 Jan 2026 00:00:03 GMT"), state: after(1), random: 0, want: 3_000 },
    ],
    [
      "Retry-After that would cross the deadline: give up",
      { outcome: response(503, "9"), state: after(1, 1_500), random: 0, want: null },
    ],
    ["Retry-After that fits the deadline", { outcome: response(503, "9"), state: after(1, 500), random: 0, want: 9_000 }],
    [
      "a backoff that would cross the deadline: give up",
      { outcome: { kind: "network-error" }, state: after(2, 9_950), random: 0.9, want: null },
    ],
    ["unreadable Retry-After falls back to backoff", { outcome: response(503, "later"), state: after(1), random: 0.5, want: 50 }],
  ];
  it.each(cases)("%s", (_name, { outcome, state, random, want }) => {
    expect(retryDelay(outcome, state, POLICY, () => random)).toBe(want);
  });

  it("draws every delay from [0, ceiling) with the default randomness", () => {
    for (let attempts = 1; attempts < POLICY.maxAttempts; attempts += 1) {
      const ceiling = Math.min(POLICY.maxDelayMs, POLICY.baseDelayMs * 2 ** (attempts - 1));
      for (let i = 0; i < 200; i += 1) {
        const delay = retryDelay({ kind: "network-error" }, after(attempts), POLICY);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(ceiling);
      }
    }
  });
});
