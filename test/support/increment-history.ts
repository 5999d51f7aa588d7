/*
 * The history checker for distributed tests: clients send keyed increments (+1, a unique
 * Idempotency-Key each, the same key on every retry of it) to counters through any node, and
 * record what each increment's sender learned. At the end the counters are read back and the
 * history must explain them exactly: nothing acknowledged lost, nothing applied twice.
 */

/** What the sender of one increment learned. */
type IncrementOutcome =
  /** Acknowledged (2xx): the counter's version after this increment. */
  | { kind: "acknowledged"; version: number }
  /** Refused for good (4xx): it must not have been applied. */
  | { kind: "refused" }
  /** No answer even after retries (network error, 502): applied at most once, perhaps not at all. */
  | { kind: "unknown" };

export interface Increment {
  counter: string;
  key: string;
  outcome: IncrementOutcome;
}

/** A counter as read back at the end: its value (0 when absent) and version. */
export interface FinalCounter {
  value: number;
  version: number;
}

export interface HistoryVerdict {
  /** Acknowledged increments that the final value does not account for. */
  lost: number;
  /** Increments applied more often than their keys were sent. */
  doubled: number;
  /** Readable reasons, empty when the history holds. */
  problems: string[];
}

/**
 * Checks a history against the final counters. Per counter, with A acknowledged and U unknown
 * increments, the final value must lie in [A, A + U]; every acknowledged version is unique and
 * no higher than the final version; a key is acknowledged with one version only.
 */
export function checkIncrementHistory(history: readonly Increment[], finals: ReadonlyMap<string, FinalCounter>): HistoryVerdict {
  const problems: string[] = [];
  let lost = 0;
  let doubled = 0;
  const byCounter = new Map<string, Increment[]>();
  for (const increment of history) {
    const list = byCounter.get(increment.counter) ?? [];
    list.push(increment);
    byCounter.set(increment.counter, list);
  }
  for (const [counter, increments] of byCounter) {
    const final = finals.get(counter) ?? { value: 0, version: 0 };
    const versionsByKey = new Map<string, Set<number>>();
    const keyByVersion = new Map<number, string>();
    let acknowledged = 0;
    let unknown = 0;
    for (const { key, outcome } of increments) {
      if (outcome.kind === "unknown") unknown += 1;
      if (outcome.kind !== "acknowledged") continue;
      const versions = versionsByKey.get(key) ?? new Set<number>();
      if (versions.size === 0) acknowledged += 1;
      versions.add(outcome.version);
      versionsByKey.set(key, versions);
      const holder = keyByVersion.get(outcome.version);
      if (holder !== undefined && holder !== key) {
        problems.push(`${counter}: version ${outcome.version} acknowledged to both ${holder} and ${key}`);
      }
      keyByVersion.set(outcome.version, key);
      if (outcome.version > final.version) {
        problems.push(`${counter}: ${key} acknowledged at version ${outcome.version}, beyond the final version ${final.version}`);
      }
    }
    for (const [key, versions] of versionsByKey) {
      if (versions.size > 1) problems.push(`${counter}: ${key} acknowledged at versions ${[...versions].join(", ")}`);
    }
    if (final.value < acknowledged) {
      lost += acknowledged - final.value;
      problems.push(`${counter}: ${acknowledged} acknowledged increments but the value is ${final.value}`);
    }
    if (final.value > acknowledged + unknown) {
      doubled += final.value - acknowledged - unknown;
      problems.push(`${counter}: value ${final.value} exceeds ${acknowledged} acknowledged + ${unknown} unknown increments`);
    }
  }
  for (const [counter, final] of finals) {
    if (!byCounter.has(counter) && final.value !== 0) {
      doubled += final.value;
      problems.push(`${counter}: value ${final.value} but no increment was sent to it`);
    }
  }
  return { lost, doubled, problems };
}
