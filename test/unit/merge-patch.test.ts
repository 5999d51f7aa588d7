import { describe, expect, it } from "vitest";
import { InvalidDocumentError } from "../../server/documents/document-errors.js";
import type { JsonObject } from "../../server/documents/json-value.js";
import { applyMergePatch } from "../../server/documents/merge-patch.js";

describe("applyMergePatch", () => {
  // RFC 7396 Appendix A, the cases whose target and patch are objects.
  const rfc: [string, { target: string; patch: string; want: string }][] = [
    ["replaces a member", { target: '{"a":"b"}', patch: '{"a":"c"}', want: '{"a":"c"}' }],
    ["adds a member", { target: '{"a":"b"}', patch: '{"b":"c"}', want: '{"a":"b","b":"c"}' }],
    ["removes a member", { target: '{"a":"b"}', patch: '{"a":null}', want: "{}" }],
    ["removes one of two", { target: '{"a":"b","b":"c"}', patch: '{"a":null}', want: '{"b":"c"}' }],
    ["replaces an array by a string", { target: '{"a":["b"]}', patch: '{"a":"c"}', want: '{"a":"c"}' }],
    ["replaces a string by an array", { target: '{"a":"c"}', patch: '{"a":["b"]}', want: '{"a":["b"]}' }],
    ["merges nested objects", { target: '{"a":{"b":"c"}}', patch: '{"a":{"b":"d","c":null}}', want: '{"a":{"b":"d"}}' }],
    ["replaces arrays whole", { target: '{"a":[{"b":"c"}]}', patch: '{"a":[1]}', want: '{"a":[1]}' }],
    ["keeps existing nulls", { target: '{"e":null}', patch: '{"a":1}', want: '{"e":null,"a":1}' }],
    ["drops nulls inside a new member", { target: "{}", patch: '{"a":{"bb":{"ccc":null}}}', want: '{"a":{"bb":{}}}' }],
  ];
  it.each(rfc)("RFC 7396: %s", (_, { target, patch, want }) => {
    expect(applyMergePatch(JSON.parse(target), JSON.parse(patch))).toEqual(JSON.parse(want));
  });

  const more: [string, { target: JsonObject; patch: JsonObject; want: JsonObject }][] = [
    ["an empty patch changes nothing", { target: { a: 1 }, patch: {}, want: { a: 1 } }],
    ["removing a missing member is a no-op", { target: { a: 1 }, patch: { b: null }, want: { a: 1 } }],
    ["an object replaces a scalar", { target: { a: 1 }, patch: { a: { b: null, c: 2 } }, want: { a: { c: 2 } } }],
    ["an object replaces an array", { target: { a: [1] }, patch: { a: { b: 1 } }, want: { a: { b: 1 } } }],
    ["a scalar replaces an object", { target: { a: { b: 1 } }, patch: { a: false }, want: { a: false } }],
    [
      "constructor and prototype are stored as data",
      {
        target: {},
        patch: { constructor: { prototype: { polluted: true } }, prototype: 1 },
        want: { constructor: { prototype: { polluted: true } }, prototype: 1 },
      },
    ],
    [
      "constructor merges with a stored constructor member",
      { target: { constructor: { a: 1 } }, patch: { constructor: { b: 2 } }, want: { constructor: { a: 1, b: 2 } } },
    ],
    ["a null constructor is a no-op on {}", { target: {}, patch: { constructor: null, toString: null }, want: {} }],
  ];
  it.each(more)("%s", (_, { target, patch, want }) => {
    const result = applyMergePatch(target, patch);
    expect(result).toEqual(want);
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
  });

  it("stores constructor as an own member without touching Object", () => {
    const result = applyMergePatch({}, JSON.parse('{"constructor": {"prototype": {"polluted": true}}}'));
    expect(Object.hasOwn(result, "constructor")).toBe(true);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty("polluted");
  });

  const refused: [string, unknown][] = [
    ["a top-level __proto__ key", JSON.parse('{"__proto__": {"polluted": true}}')],
    ["a nested __proto__ key", JSON.parse('{"a": {"__proto__": {"polluted": true}}}')],
    ["a patch nested too deep", JSON.parse('{"a":'.repeat(65) + "1" + "}".repeat(65))],
    ["an array patch", ["c"]],
    ["a null patch", null],
  ];
  it.each(refused)("refuses %s", (_, patch) => {
    const target: JsonObject = { a: { b: 1 } };
    expect(() => applyMergePatch(target, patch as JsonObject)).toThrow(InvalidDocumentError);
    expect(target).toEqual({ a: { b: 1 } });
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });
});
