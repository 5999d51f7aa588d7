import { describe, expect, it } from "vitest";
import {
  assertSafeDocument,
  assertSafeResult,
  copySafeValue,
  MAX_DOCUMENT_DEPTH,
} from "../../server/documents/document-limits.js";
import { InvalidDocumentError, PatchConflictError } from "../../server/documents/document-errors.js";
import type { JsonObject, JsonValue } from "../../server/documents/json-value.js";

function nestedArrays(depth: number): JsonValue {
  let value: JsonValue = 1;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

function nestedObjects(depth: number): JsonValue {
  let value: JsonValue = "leaf";
  for (let i = 0; i < depth; i++) value = { k: value };
  return value;
}

describe("assertSafeDocument", () => {
  const safe: [string, unknown][] = [
    ["a number", 5],
    ["null", null],
    ["a string", "__proto__"],
    ["an empty object", {}],
    ["an empty array", []],
    ["64 nested arrays", nestedArrays(64)],
    ["64 nested objects", nestedObjects(64)],
    ["64 levels mixing both", JSON.parse('{"a":'.repeat(32) + "[".repeat(32) + "]".repeat(32) + "}".repeat(32))],
    ["a wide, shallow document", Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, [i]]))],
    ["constructor and prototype keys", JSON.parse('{"constructor": {"prototype": {"polluted": true}}}')],
    ["a __proto__ string value", { key: "__proto__" }],
  ];
  it.each(safe)("accepts %s", (_, given) => {
    expect(() => assertSafeDocument(given)).not.toThrow();
  });

  const unsafe: [string, unknown][] = [
    ["65 nested arrays", nestedArrays(65)],
    ["65 nested objects", nestedObjects(65)],
    ["65 levels deep in one branch only", { shallow: 1, deep: nestedObjects(64) }],
    ["a top-level __proto__ key", JSON.parse('{"__proto__": {"polluted": true}}')],
    ["a nested __proto__ key", JSON.parse('{"a": [{"b": {"__proto__": 1}}]}')],
    ["a __proto__ key made by a computed name", { ["__proto__"]: 1 }],
  ];
  it.each(unsafe)("refuses %s", (_, given) => {
    expect(() => assertSafeDocument(given)).toThrow(InvalidDocumentError);
  });

  it("has a limit of 64 by default", () => {
    expect(MAX_DOCUMENT_DEPTH).toBe(64);
  });

  it("takes another limit", () => {
    expect(() => assertSafeDocument(nestedArrays(3), 3)).not.toThrow();
    expect(() => assertSafeDocument(nestedArrays(4), 3)).toThrow(InvalidDocumentError);
    expect(() => assertSafeDocument(5, 0)).not.toThrow();
    expect(() => assertSafeDocument({}, 0)).toThrow(InvalidDocumentError);
  });

  it("refuses a 1 MiB body of nested arrays without exhausting the stack", () => {
    const hostile = nestedArrays(512 * 1024);
    expect(() => assertSafeDocument(hostile)).toThrow(InvalidDocumentError);
  });

  it("leaves Object.prototype alone", () => {
    assertSafeDocument(JSON.parse('{"constructor": {"prototype": {"polluted": true}}}'));
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });
});

describe("assertSafeResult", () => {
  it("accepts a document within the limit", () => {
    expect(() => assertSafeResult({ a: nestedObjects(63) })).not.toThrow();
  });

  it("refuses a result that is too deep as a conflict", () => {
    expect(() => assertSafeResult({ a: nestedObjects(64) } as JsonObject)).toThrow(PatchConflictError);
  });
});

describe("copySafeValue", () => {
  it("returns a deep copy", () => {
    const given = { a: [1, { b: "c" }], constructor: "plain" };
    const copy = copySafeValue(given);
    expect(copy).toEqual(given);
    expect(copy).not.toBe(given);
    expect((copy as { a: unknown[] }).a[1]).not.toBe(given.a[1]);
  });

  const refused: [string, unknown][] = [
    ["a missing value", undefined],
    ["a value too deep", nestedArrays(65)],
    ["a value with a __proto__ key", JSON.parse('{"x": {"__proto__": {}}}')],
  ];
  it.each(refused)("refuses %s", (_, given) => {
    expect(() => copySafeValue(given)).toThrow(InvalidDocumentError);
  });
});
