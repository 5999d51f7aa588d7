import type { Parameters } from "fast-check";

/** `APOSTATE_LONG=1` switches every reliability test from its short setting to its long one. */
const LONG = process.env.APOSTATE_LONG === "1";

/** Picks the short or the long setting. */
export function setting<T>(short: T, long: T): T {
  return LONG ? long : short;
}

/**
 * fast-check's run parameters. A failure prints its seed and shrink path; setting
 * `APOSTATE_SEED` (and `APOSTATE_PATH`) replays exactly that counterexample.
 */
export function propertyParameters<T>(numRuns: number): Parameters<T> {
  const seed = process.env.APOSTATE_SEED;
  const path = process.env.APOSTATE_PATH;
  return {
    numRuns: setting(numRuns, numRuns * 10),
    ...(seed !== undefined && { seed: Number(seed) }),
    ...(path !== undefined && { path }),
  };
}
