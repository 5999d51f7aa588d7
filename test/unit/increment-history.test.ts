import { describe, expect, it } from "vitest";
import { checkIncrementHistory, type FinalCounter, type Increment } from "../support/increment-history.js";

const ack = (counter: string, key: string, version: number): Increment => ({
  counter,
  key,
  outcome: { kind: "acknowledged", version },
});
const unknown = (counter: string, key: string): Increment => ({ counter, key, outcome: { kind: "unknown" } });
const refused = (counter: string, key: string): Increment => ({ counter, key, outcome: { kind: "refused" } });
const finals = (entries: Record<string, FinalCounter>) => new Map(Object.entries(entries));

/*
 * The checker must be able to fail: each synthetic history below breaks the guarantee in one
 * way (a lost write, a doubled one, a repeated version, a replay with another version) and must
 * be caught; the sound ones must pass.
 */
describe("checkIncrementHistory", () => {
  it.each<[string, Increment[], Map<string, FinalCounter>, { lost: number; doubled: number; problems: number }]>([
    [
      "a sound history",
      [ack("c1", "k1", 1), ack("c1", "k2", 2), ack("c2", "k3", 1), refused("c2", "k4")],
      finals({ c1: { value: 2, version: 2 }, c2: { value: 1, version: 1 } }),
      { lost: 0, doubled: 0, problems: 0 },
    ],
    [
      "a replay acknowledged again with the same version",
      [ack("c1", "k1", 1), ack("c1", "k1", 1)],
      finals({ c1: { value: 1, version: 1 } }),
      { lost: 0, doubled: 0, problems: 0 },
    ],
    [
      "an unknown increment that was applied",
      [ack("c1", "k1", 1), unknown("c1", "k2")],
      finals({ c1: { value: 2, version: 2 } }),
      { lost: 0, doubled: 0, problems: 0 },
    ],
    [
      "an unknown increment that was not applied",
      [ack("c1", "k1", 1), unknown("c1", "k2")],
      finals({ c1: { value: 1, version: 1 } }),
      { lost: 0, doubled: 0, problems: 0 },
    ],
    [
      "a lost acknowledged write",
      [ack("c1", "k1", 1), ack("c1", "k2", 2)],
      finals({ c1: { value: 1, version: 1 } }),
      { lost: 1, doubled: 0, problems: 2 },
    ],
    [
      "a write applied twice",
      [ack("c1", "k1", 1)],
      finals({ c1: { value: 2, version: 2 } }),
      { lost: 0, doubled: 1, problems: 1 },
    ],
    [
      "an acknowledged version given to two keys",
      [ack("c1", "k1", 1), ack("c1", "k2", 1)],
      finals({ c1: { value: 2, version: 2 } }),
      { lost: 0, doubled: 0, problems: 1 },
    ],
    [
      "one key acknowledged at two versions",
      [ack("c1", "k1", 1), ack("c1", "k1", 2)],
      finals({ c1: { value: 1, version: 2 } }),
      { lost: 0, doubled: 0, problems: 1 },
    ],
    [
      "a counter nobody wrote",
      [ack("c1", "k1", 1)],
      finals({ c1: { value: 1, version: 1 }, c9: { value: 3, version: 3 } }),
      { lost: 0, doubled: 3, problems: 1 },
    ],
    ["a counter that vanished", [ack("c1", "k1", 1), ack("c1", "k2", 2)], finals({}), { lost: 2, doubled: 0, problems: 3 }],
  ])("%s", (_name, history, final, want) => {
    const verdict = checkIncrementHistory(history, final);
    expect({ lost: verdict.lost, doubled: verdict.doubled, problems: verdict.problems.length }).toEqual(want);
  });

  it("names the counter and keys in its reasons", () => {
    const verdict = checkIncrementHistory(
      [ack("acct-7", "k1", 4), ack("acct-7", "k2", 4)],
      finals({ "acct-7": { value: 2, version: 5 } }),
    );
    expect(verdict.problems).toEqual(["acct-7: version 4 acknowledged to both k1 and k2"]);
  });
});
