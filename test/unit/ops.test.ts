import { describe, expect, it } from "vitest";
import { ConditionFailedError, InvalidDocumentError, PatchConflictError } from "../../server/documents/document-errors.js";
import type { Condition, JsonObject, Operation } from "../../server/documents/json-value.js";
import { applyOps } from "../../server/documents/ops.js";

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function holds(doc: JsonObject, condition: Condition): boolean {
  try {
    applyOps(doc, { if: [condition], do: [] });
    return true;
  } catch (error) {
    if (error instanceof ConditionFailedError) return false;
    throw error;
  }
}

describe("applyOps conditions", () => {
  const doc: JsonObject = {
    n: 10,
    zero: 0,
    s: "b",
    z: null,
    f: false,
    list: [1, { k: "v" }],
    obj: { x: 1, y: [2] },
    constructor: "data",
    emoji: "\u{1F600}",
    halfwidth: "\uFF61",
  };
  const cases: [string, { condition: Condition; want: boolean }][] = [
    ["eq number", { condition: { path: "/n", op: "eq", value: 10 }, want: true }],
    ["eq number, other value", { condition: { path: "/n", op: "eq", value: 11 }, want: false }],
    ["eq across types", { condition: { path: "/n", op: "eq", value: "10" }, want: false }],
    ["eq null", { condition: { path: "/z", op: "eq", value: null }, want: true }],
    ["eq on a missing member", { condition: { path: "/missing", op: "eq", value: null }, want: false }],
    ["eq deep, any member order", { condition: { path: "/obj", op: "eq", value: { y: [2], x: 1 } }, want: true }],
    ["eq deep, different array", { condition: { path: "/obj", op: "eq", value: { x: 1, y: [2, 3] } }, want: false }],
    ["eq 0 and -0", { condition: { path: "/zero", op: "eq", value: -0 }, want: true }],
    ["eq an array element", { condition: { path: "/list/0", op: "eq", value: 1 }, want: true }],
    ["eq inside an array element", { condition: { path: "/list/1/k", op: "eq", value: "v" }, want: true }],
    ["eq the whole document", { condition: { path: "", op: "eq", value: {} }, want: false }],
    ["ne a different value", { condition: { path: "/n", op: "ne", value: 11 }, want: true }],
    ["ne the same value", { condition: { path: "/n", op: "ne", value: 10 }, want: false }],
    ["ne across types", { condition: { path: "/f", op: "ne", value: 0 }, want: true }],
    ["ne on a missing member", { condition: { path: "/missing", op: "ne", value: 1 }, want: true }],
    ["ne through a scalar", { condition: { path: "/n/x", op: "ne", value: 1 }, want: true }],
    ["lt numbers", { condition: { path: "/n", op: "lt", value: 11 }, want: true }],
    ["lt equal numbers", { condition: { path: "/n", op: "lt", value: 10 }, want: false }],
    ["lte equal numbers", { condition: { path: "/n", op: "lte", value: 10 }, want: true }],
    ["gt numbers", { condition: { path: "/n", op: "gt", value: 9.5 }, want: true }],
    ["gt equal numbers", { condition: { path: "/n", op: "gt", value: 10 }, want: false }],
    ["gte equal numbers", { condition: { path: "/n", op: "gte", value: 10 }, want: true }],
    ["gte a larger number", { condition: { path: "/n", op: "gte", value: 11 }, want: false }],
    ["gte negative numbers", { condition: { path: "/n", op: "gte", value: -100 }, want: true }],
    ["lt strings", { condition: { path: "/s", op: "lt", value: "c" }, want: true }],
    ["lt a longer string", { condition: { path: "/s", op: "lt", value: "ba" }, want: true }],
    ["gt strings", { condition: { path: "/s", op: "gt", value: "a" }, want: true }],
    ["gte equal strings", { condition: { path: "/s", op: "gte", value: "b" }, want: true }],
    ["lt in byte order, not UTF-16 order", { condition: { path: "/halfwidth", op: "lt", value: "\u{1F600}" }, want: true }],
    ["gt in byte order, not UTF-16 order", { condition: { path: "/emoji", op: "gt", value: "\uFF61" }, want: true }],
    ["uppercase before lowercase", { condition: { path: "/s", op: "gt", value: "Z" }, want: true }],
    ["lt a number against a string", { condition: { path: "/n", op: "lt", value: "z" }, want: false }],
    ["gte a string against a number", { condition: { path: "/s", op: "gte", value: 0 }, want: false }],
    ["lte null", { condition: { path: "/z", op: "lte", value: null }, want: false }],
    ["gte booleans", { condition: { path: "/f", op: "gte", value: false }, want: false }],
    ["lte arrays", { condition: { path: "/list", op: "lte", value: [1] }, want: false }],
    ["lt on a missing member", { condition: { path: "/missing", op: "lt", value: 1 }, want: false }],
    ["gte on a missing member", { condition: { path: "/missing", op: "gte", value: "" }, want: false }],
    ["exists", { condition: { path: "/n", op: "exists" }, want: true }],
    ["exists on null", { condition: { path: "/z", op: "exists" }, want: true }],
    ["exists on a missing member", { condition: { path: "/missing", op: "exists" }, want: false }],
    ["exists on the whole document", { condition: { path: "", op: "exists" }, want: true }],
    ["exists on an array element", { condition: { path: "/list/1", op: "exists" }, want: true }],
    ["exists beyond an array", { condition: { path: "/list/2", op: "exists" }, want: false }],
    ["exists on -", { condition: { path: "/list/-", op: "exists" }, want: false }],
    ["exists on a non-canonical index", { condition: { path: "/list/01", op: "exists" }, want: false }],
    ["exists through a scalar", { condition: { path: "/s/0", op: "exists" }, want: false }],
    ["eq on a stored constructor member", { condition: { path: "/constructor", op: "eq", value: "data" }, want: true }],
    ["exists on an inherited name", { condition: { path: "/toString", op: "exists" }, want: false }],
    ["exists on an inherited path", { condition: { path: "/obj/constructor/prototype", op: "exists" }, want: false }],
    ["exists on an array's length", { condition: { path: "/list/length", op: "exists" }, want: false }],
    ["absent on a missing member", { condition: { path: "/missing", op: "absent" }, want: true }],
    ["absent on null", { condition: { path: "/z", op: "absent" }, want: false }],
    ["absent on an inherited name", { condition: { path: "/hasOwnProperty", op: "absent" }, want: true }],
  ];
  it.each(cases)("%s", (_, { condition, want }) => {
    expect(holds(doc, condition)).toBe(want);
  });

  it("names the first false condition with its value", () => {
    const failed = new Array<unknown>();
    try {
      applyOps(
        { balance: 5 },
        {
          if: [
            { path: "/balance", op: "exists" },
            { path: "/balance", op: "gte", value: 10 },
            { path: "/missing", op: "exists" },
          ],
          do: [],
        },
      );
    } catch (error) {
      failed.push(error);
    }
    expect(failed).toHaveLength(1);
    expect(failed[0]).toBeInstanceOf(ConditionFailedError);
    expect((failed[0] as ConditionFailedError).failed).toEqual({ index: 1, path: "/balance", op: "gte", value: 10 });
  });

  const noValue: [string, Condition][] = [
    ["exists", { path: "/missing", op: "exists" }],
    ["absent", { path: "/present", op: "absent" }],
  ];
  it.each(noValue)("omits the value of a failed %s", (_, condition) => {
    expect(() => applyOps({ present: 1 }, { if: [condition], do: [] })).toThrow(
      expect.objectContaining({ failed: { index: 0, path: condition.path, op: condition.op } }),
    );
  });

  it("changes nothing when a condition fails", () => {
    const doc: JsonObject = { balance: 5 };
    expect(() =>
      applyOps(doc, { if: [{ path: "/balance", op: "gte", value: 10 }], do: [{ op: "inc", path: "/balance", value: -10 }] }),
    ).toThrow(ConditionFailedError);
    expect(doc).toEqual({ balance: 5 });
  });

  it("checks conditions against the document before any operation", () => {
    const result = applyOps(
      { a: 1 },
      {
        if: [
          { path: "/a", op: "eq", value: 1 },
          { path: "/b", op: "absent" },
        ],
        do: [{ op: "set", path: "/b", value: 2 }],
      },
    );
    expect(result).toEqual({ a: 1, b: 2 });
  });

  it("treats a missing if as no conditions", () => {
    expect(applyOps({}, { do: [{ op: "set", path: "/a", value: 1 }] })).toEqual({ a: 1 });
  });

  const badConditions: [string, Condition][] = [
    ["a bad pointer", { path: "a", op: "exists" }],
    ["a __proto__ segment", { path: "/__proto__", op: "absent" }],
    ["a missing value", { path: "/a", op: "eq" } as Condition],
    ["an unknown op", { path: "/a", op: "like", value: 1 } as unknown as Condition],
  ];
  it.each(badConditions)("refuses a condition with %s", (_, condition) => {
    expect(() => applyOps({}, { if: [condition], do: [] })).toThrow(InvalidDocumentError);
  });

  it("validates the operations before evaluating conditions", () => {
    expect(() =>
      applyOps({}, { if: [{ path: "/a", op: "exists" }], do: [{ op: "set", path: "/__proto__/x", value: 1 }] }),
    ).toThrow(InvalidDocumentError);
  });
});

describe("applyOps operations", () => {
  const succeeds: [string, { doc: JsonObject; ops: Operation[]; want: JsonObject }][] = [
    ["no operations", { doc: { a: 1 }, ops: [], want: { a: 1 } }],
    ["set a new member", { doc: {}, ops: [{ op: "set", path: "/status", value: "open" }], want: { status: "open" } }],
    ["set replaces a member", { doc: { a: [1] }, ops: [{ op: "set", path: "/a", value: { b: 2 } }], want: { a: { b: 2 } } }],
    ["set creates missing parents", { doc: {}, ops: [{ op: "set", path: "/a/b/c", value: 1 }], want: { a: { b: { c: 1 } } } }],
    [
      "set creates parents next to others",
      { doc: { a: { x: 1 } }, ops: [{ op: "set", path: "/a/b/c", value: null }], want: { a: { x: 1, b: { c: null } } } },
    ],
    ["set replaces an array element", { doc: { a: [1, 2] }, ops: [{ op: "set", path: "/a/0", value: 0 }], want: { a: [0, 2] } }],
    ["set at index == length appends", { doc: { a: [1] }, ops: [{ op: "set", path: "/a/1", value: 2 }], want: { a: [1, 2] } }],
    ["set at - appends", { doc: { a: [1] }, ops: [{ op: "set", path: "/a/-", value: 2 }], want: { a: [1, 2] } }],
    [
      "set inside an array element",
      { doc: { a: [{}] }, ops: [{ op: "set", path: "/a/0/b", value: 1 }], want: { a: [{ b: 1 }] } },
    ],
    [
      "set creates a parent inside an array element",
      { doc: { a: [{}] }, ops: [{ op: "set", path: "/a/0/b/c", value: 1 }], want: { a: [{ b: { c: 1 } }] } },
    ],
    ["set of the whole document", { doc: { a: 1 }, ops: [{ op: "set", path: "", value: { b: 2 } }], want: { b: 2 } }],
    ["set of escaped names", { doc: {}, ops: [{ op: "set", path: "/a~1b/c~0d", value: 1 }], want: { "a/b": { "c~d": 1 } } }],
    ["set of the empty name", { doc: {}, ops: [{ op: "set", path: "/", value: 1 }], want: { "": 1 } }],
    ["remove a member", { doc: { a: 1, b: 2 }, ops: [{ op: "remove", path: "/a" }], want: { b: 2 } }],
    ["remove a missing member is a no-op", { doc: { a: 1 }, ops: [{ op: "remove", path: "/b" }], want: { a: 1 } }],
    ["remove under a missing parent is a no-op", { doc: {}, ops: [{ op: "remove", path: "/a/b/c" }], want: {} }],
    ["remove an inherited name is a no-op", { doc: {}, ops: [{ op: "remove", path: "/constructor/prototype" }], want: {} }],
    ["remove an array element", { doc: { a: [1, 2, 3] }, ops: [{ op: "remove", path: "/a/1" }], want: { a: [1, 3] } }],
    ["remove beyond an array is a no-op", { doc: { a: [1] }, ops: [{ op: "remove", path: "/a/5" }], want: { a: [1] } }],
    ["remove - is a no-op", { doc: { a: [1] }, ops: [{ op: "remove", path: "/a/-" }], want: { a: [1] } }],
    ["inc an existing number", { doc: { n: 10 }, ops: [{ op: "inc", path: "/n", value: -10 }], want: { n: 0 } }],
    ["inc counts a missing member as 0", { doc: {}, ops: [{ op: "inc", path: "/n", value: 5 }], want: { n: 5 } }],
    [
      "inc creates missing parents",
      { doc: {}, ops: [{ op: "inc", path: "/stats/hits", value: 1 }], want: { stats: { hits: 1 } } },
    ],
    ["inc by a fraction", { doc: { n: 1 }, ops: [{ op: "inc", path: "/n", value: 0.5 }], want: { n: 1.5 } }],
    ["inc an array element", { doc: { a: [1, 2] }, ops: [{ op: "inc", path: "/a/1", value: 3 }], want: { a: [1, 5] } }],
    ["inc up to 2^53 - 1", { doc: { n: MAX_SAFE - 1 }, ops: [{ op: "inc", path: "/n", value: 1 }], want: { n: MAX_SAFE } }],
    [
      "inc down to -(2^53 - 1)",
      { doc: { n: -MAX_SAFE + 1 }, ops: [{ op: "inc", path: "/n", value: -1 }], want: { n: -MAX_SAFE } },
    ],
    ["inc by 0", { doc: { n: 3 }, ops: [{ op: "inc", path: "/n", value: 0 }], want: { n: 3 } }],
    [
      "append to an array",
      { doc: { h: [1] }, ops: [{ op: "append", path: "/h", value: { at: 2 } }], want: { h: [1, { at: 2 }] } },
    ],
    ["append creates the array", { doc: {}, ops: [{ op: "append", path: "/h", value: 1 }], want: { h: [1] } }],
    [
      "append creates the parents",
      { doc: {}, ops: [{ op: "append", path: "/a/b/h", value: [1] }], want: { a: { b: { h: [[1]] } } } },
    ],
    ["append to a nested array", { doc: { a: [[]] }, ops: [{ op: "append", path: "/a/0", value: null }], want: { a: [[null]] } }],
    [
      "operations see earlier ones",
      {
        doc: { balance: 25 },
        ops: [
          { op: "inc", path: "/balance", value: -10 },
          { op: "set", path: "/status", value: "open" },
          { op: "append", path: "/history", value: { debit: 10 } },
          { op: "inc", path: "/history/0/debit", value: 1 },
          { op: "remove", path: "/status" },
        ],
        want: { balance: 15, history: [{ debit: 11 }] },
      },
    ],
    [
      "constructor and prototype are plain members",
      {
        doc: {},
        ops: [
          { op: "set", path: "/constructor/prototype/polluted", value: true },
          { op: "inc", path: "/prototype/count", value: 1 },
          { op: "append", path: "/toString", value: 1 },
        ],
        want: { constructor: { prototype: { polluted: true } }, prototype: { count: 1 }, toString: [1] },
      },
    ],
  ];
  it.each(succeeds)("%s", (_, { doc, ops, want }) => {
    expect(applyOps(doc, { do: ops })).toEqual(want);
  });

  const conflicts: [string, { doc: JsonObject; ops: Operation[] }][] = [
    ["set of the whole document with a number", { doc: {}, ops: [{ op: "set", path: "", value: 5 }] }],
    ["set of the whole document with an array", { doc: {}, ops: [{ op: "set", path: "", value: [] }] }],
    ["set of the whole document with null", { doc: {}, ops: [{ op: "set", path: "", value: null }] }],
    ["set through a scalar", { doc: { a: 1 }, ops: [{ op: "set", path: "/a/b", value: 1 }] }],
    ["set through null", { doc: { a: null }, ops: [{ op: "set", path: "/a/b", value: 1 }] }],
    ["set through a string", { doc: { a: "xy" }, ops: [{ op: "set", path: "/a/0", value: 1 }] }],
    ["set beyond the end of an array", { doc: { a: [1] }, ops: [{ op: "set", path: "/a/2", value: 1 }] }],
    ["set at a non-canonical index", { doc: { a: [1] }, ops: [{ op: "set", path: "/a/01", value: 1 }] }],
    ["set at an array's length member", { doc: { a: [1] }, ops: [{ op: "set", path: "/a/length", value: 0 }] }],
    ["set through a missing array element", { doc: { a: [] }, ops: [{ op: "set", path: "/a/0/b", value: 1 }] }],
    ["set through -", { doc: { a: [] }, ops: [{ op: "set", path: "/a/-/b", value: 1 }] }],
    ["remove of the whole document", { doc: {}, ops: [{ op: "remove", path: "" }] }],
    ["remove through a scalar", { doc: { a: 1 }, ops: [{ op: "remove", path: "/a/b" }] }],
    ["remove at a non-canonical index", { doc: { a: [1] }, ops: [{ op: "remove", path: "/a/x" }] }],
    ["inc of a string", { doc: { n: "1" }, ops: [{ op: "inc", path: "/n", value: 1 }] }],
    ["inc of null", { doc: { n: null }, ops: [{ op: "inc", path: "/n", value: 1 }] }],
    ["inc of an object", { doc: { n: {} }, ops: [{ op: "inc", path: "/n", value: 1 }] }],
    ["inc of the whole document", { doc: {}, ops: [{ op: "inc", path: "", value: 1 }] }],
    ["inc through a scalar", { doc: { n: 1 }, ops: [{ op: "inc", path: "/n/m", value: 1 }] }],
    ["inc to 2^53", { doc: { n: MAX_SAFE }, ops: [{ op: "inc", path: "/n", value: 1 }] }],
    ["inc to -2^53", { doc: { n: -MAX_SAFE }, ops: [{ op: "inc", path: "/n", value: -1 }] }],
    ["inc of a missing member by 2^53", { doc: {}, ops: [{ op: "inc", path: "/n", value: 2 ** 53 }] }],
    ["inc by a huge number", { doc: { n: 1 }, ops: [{ op: "inc", path: "/n", value: 1e300 }] }],
    ["inc to infinity", { doc: { n: Number.MAX_VALUE }, ops: [{ op: "inc", path: "/n", value: Number.MAX_VALUE }] }],
    ["inc of a stored unsafe integer", { doc: { n: 2 ** 60 }, ops: [{ op: "inc", path: "/n", value: 0 }] }],
    ["append to an object", { doc: { h: {} }, ops: [{ op: "append", path: "/h", value: 1 }] }],
    ["append to a string", { doc: { h: "abc" }, ops: [{ op: "append", path: "/h", value: "d" }] }],
    ["append to null", { doc: { h: null }, ops: [{ op: "append", path: "/h", value: 1 }] }],
    ["append to the whole document", { doc: {}, ops: [{ op: "append", path: "", value: 1 }] }],
    ["append through a scalar", { doc: { h: 1 }, ops: [{ op: "append", path: "/h/x", value: 1 }] }],
    [
      "a result nested deeper than 64",
      { doc: {}, ops: [{ op: "set", path: "/a/b", value: JSON.parse("[".repeat(63) + "]".repeat(63)) }] },
    ],
    ["a very long path", { doc: {}, ops: [{ op: "set", path: "/a".repeat(100_000), value: 1 }] }],
    [
      "a later operation",
      {
        doc: { a: 1 },
        ops: [
          { op: "set", path: "/b", value: 2 },
          { op: "inc", path: "/b/c", value: 1 },
        ],
      },
    ],
  ];
  it.each(conflicts)("refuses %s as a conflict", (_, { doc, ops }) => {
    expect(() => applyOps(doc, { do: ops })).toThrow(PatchConflictError);
  });

  const invalid: [string, Operation][] = [
    ["a pointer without a leading slash", { op: "set", path: "a", value: 1 }],
    ["a bad escape", { op: "remove", path: "/a~" }],
    ["a __proto__ segment", { op: "set", path: "/__proto__/polluted", value: true }],
    ["a __proto__ member", { op: "set", path: "/__proto__", value: { polluted: true } }],
    ["a nested __proto__ segment", { op: "inc", path: "/a/__proto__/polluted", value: 1 }],
    ["a __proto__ in append", { op: "append", path: "/constructor/__proto__", value: 1 }],
    ["a __proto__ remove", { op: "remove", path: "/__proto__" }],
    ["a __proto__ key in a value", { op: "set", path: "/a", value: JSON.parse('{"__proto__": {"polluted": true}}') }],
    [
      "a __proto__ key in an appended value",
      { op: "append", path: "/a", value: JSON.parse('[{"__proto__": {"polluted": true}}]') },
    ],
    ["a value nested deeper than 64", { op: "set", path: "/a", value: JSON.parse("[".repeat(65) + "]".repeat(65)) }],
    ["a missing set value", { op: "set", path: "/a" } as Operation],
    ["a non-number inc", { op: "inc", path: "/a", value: "1" } as unknown as Operation],
    ["a non-finite inc", { op: "inc", path: "/a", value: Number.POSITIVE_INFINITY }],
    ["an unknown op", { op: "mul", path: "/a", value: 2 } as unknown as Operation],
  ];
  it.each(invalid)("refuses %s as an invalid document", (_, operation) => {
    const doc: JsonObject = { a: 1 };
    expect(() => applyOps(doc, { do: [{ op: "set", path: "/first", value: 1 }, operation] })).toThrow(InvalidDocumentError);
    expect(doc).toEqual({ a: 1 });
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });

  it("refuses a request whose do is not an array", () => {
    expect(() => applyOps({}, { do: {} as unknown as Operation[] })).toThrow(InvalidDocumentError);
  });

  it("stores constructor as data and leaves Object.prototype alone", () => {
    const result = applyOps(
      {},
      {
        do: [
          { op: "set", path: "/constructor/prototype/polluted", value: true },
          { op: "set", path: "/prototype", value: { polluted: true } },
        ],
      },
    );
    expect(Object.hasOwn(result, "constructor")).toBe(true);
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect((Object as unknown as Record<string, unknown>)["polluted"]).toBeUndefined();
  });

  it("does not change the values of the request", () => {
    const value = { x: 1, list: [] as number[] };
    const request = {
      do: [
        { op: "set", path: "/a", value },
        { op: "inc", path: "/a/x", value: 1 },
        { op: "append", path: "/a/list", value: 2 },
      ] satisfies Operation[],
    };
    expect(applyOps({}, request)).toEqual({ a: { x: 2, list: [2] } });
    expect(value).toEqual({ x: 1, list: [] });
  });

  it("sets the whole document to a copy", () => {
    const value = { a: 1 };
    const result = applyOps(
      { old: true },
      {
        do: [
          { op: "set", path: "", value },
          { op: "inc", path: "/a", value: 1 },
        ],
      },
    );
    expect(result).toEqual({ a: 2 });
    expect(value).toEqual({ a: 1 });
  });
});
