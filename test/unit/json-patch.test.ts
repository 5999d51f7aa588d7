import { describe, expect, it } from "vitest";
import { InvalidDocumentError, PatchConflictError, TestFailedError } from "../../server/documents/document-errors.js";
import { applyJsonPatch } from "../../server/documents/json-patch.js";
import type { JsonObject, JsonPatchOperation } from "../../server/documents/json-value.js";

type ErrorClass = typeof InvalidDocumentError | typeof PatchConflictError | typeof TestFailedError;

function patch(json: string): JsonPatchOperation[] {
  return JSON.parse(json) as JsonPatchOperation[];
}

describe("applyJsonPatch: RFC 6902 Appendix A", () => {
  const succeeds: [string, { doc: string; patch: string; want: string }][] = [
    [
      "A.1 adding an object member",
      { doc: '{"foo":"bar"}', patch: '[{"op":"add","path":"/baz","value":"qux"}]', want: '{"baz":"qux","foo":"bar"}' },
    ],
    [
      "A.2 adding an array element",
      {
        doc: '{"foo":["bar","baz"]}',
        patch: '[{"op":"add","path":"/foo/1","value":"qux"}]',
        want: '{"foo":["bar","qux","baz"]}',
      },
    ],
    [
      "A.3 removing an object member",
      { doc: '{"baz":"qux","foo":"bar"}', patch: '[{"op":"remove","path":"/baz"}]', want: '{"foo":"bar"}' },
    ],
    [
      "A.4 removing an array element",
      { doc: '{"foo":["bar","qux","baz"]}', patch: '[{"op":"remove","path":"/foo/1"}]', want: '{"foo":["bar","baz"]}' },
    ],
    [
      "A.5 replacing a value",
      {
        doc: '{"baz":"qux","foo":"bar"}',
        patch: '[{"op":"replace","path":"/baz","value":"boo"}]',
        want: '{"baz":"boo","foo":"bar"}',
      },
    ],
    [
      "A.6 moving a value",
      {
        doc: '{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}',
        patch: '[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]',
        want: '{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}',
      },
    ],
    [
      "A.7 moving an array element",
      {
        doc: '{"foo":["all","grass","cows","eat"]}',
        patch: '[{"op":"move","from":"/foo/1","path":"/foo/3"}]',
        want: '{"foo":["all","cows","eat","grass"]}',
      },
    ],
    [
      "A.8 testing a value: success",
      {
        doc: '{"baz":"qux","foo":["a",2,"c"]}',
        patch: '[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]',
        want: '{"baz":"qux","foo":["a",2,"c"]}',
      },
    ],
    [
      "A.10 adding a nested member object",
      {
        doc: '{"foo":"bar"}',
        patch: '[{"op":"add","path":"/child","value":{"grandchild":{}}}]',
        want: '{"foo":"bar","child":{"grandchild":{}}}',
      },
    ],
    [
      "A.11 ignoring unrecognized elements",
      { doc: '{"foo":"bar"}', patch: '[{"op":"add","path":"/baz","value":"qux","xyz":123}]', want: '{"foo":"bar","baz":"qux"}' },
    ],
    [
      "A.14 ~ escape ordering",
      { doc: '{"/":9,"~1":10}', patch: '[{"op":"test","path":"/~01","value":10}]', want: '{"/":9,"~1":10}' },
    ],
    [
      "A.16 adding an array value",
      {
        doc: '{"foo":["bar"]}',
        patch: '[{"op":"add","path":"/foo/-","value":["abc","def"]}]',
        want: '{"foo":["bar",["abc","def"]]}',
      },
    ],
  ];
  it.each(succeeds)("%s", (_, given) => {
    expect(applyJsonPatch(JSON.parse(given.doc), patch(given.patch))).toEqual(JSON.parse(given.want));
  });

  // A.13 (a duplicate "op" member) is a JSON parsing matter, decided before this layer.
  const fails: [string, { doc: string; patch: string; error: ErrorClass }][] = [
    [
      "A.9 testing a value: error",
      { doc: '{"baz":"qux"}', patch: '[{"op":"test","path":"/baz","value":"bar"}]', error: TestFailedError },
    ],
    [
      "A.12 adding to a nonexistent target",
      { doc: '{"foo":"bar"}', patch: '[{"op":"add","path":"/baz/bat","value":"qux"}]', error: PatchConflictError },
    ],
    [
      "A.15 comparing strings and numbers",
      { doc: '{"/":9,"~1":10}', patch: '[{"op":"test","path":"/~01","value":"10"}]', error: TestFailedError },
    ],
  ];
  it.each(fails)("%s", (_, given) => {
    expect(() => applyJsonPatch(JSON.parse(given.doc), patch(given.patch))).toThrow(given.error);
  });
});

describe("applyJsonPatch", () => {
  const succeeds: [string, { doc: JsonObject; patch: JsonPatchOperation[]; want: JsonObject }][] = [
    ["an empty patch", { doc: { a: 1 }, patch: [], want: { a: 1 } }],
    ["add replaces an existing member", { doc: { a: 1 }, patch: [{ op: "add", path: "/a", value: 2 }], want: { a: 2 } }],
    ["add at index 0", { doc: { a: [1] }, patch: [{ op: "add", path: "/a/0", value: 0 }], want: { a: [0, 1] } }],
    ["add at index == length appends", { doc: { a: [1] }, patch: [{ op: "add", path: "/a/1", value: 2 }], want: { a: [1, 2] } }],
    ["add - to an empty array", { doc: { a: [] }, patch: [{ op: "add", path: "/a/-", value: 1 }], want: { a: [1] } }],
    ["add the empty member name", { doc: {}, patch: [{ op: "add", path: "/", value: 1 }], want: { "": 1 } }],
    ["add an escaped member name", { doc: {}, patch: [{ op: "add", path: "/a~1b~0c", value: 1 }], want: { "a/b~c": 1 } }],
    ["add replaces the whole document", { doc: { a: 1 }, patch: [{ op: "add", path: "", value: { b: 2 } }], want: { b: 2 } }],
    ["replace the whole document", { doc: { a: 1 }, patch: [{ op: "replace", path: "", value: { b: 2 } }], want: { b: 2 } }],
    ["replace an array element", { doc: { a: [1, 2] }, patch: [{ op: "replace", path: "/a/1", value: 3 }], want: { a: [1, 3] } }],
    ["replace with null", { doc: { a: 1 }, patch: [{ op: "replace", path: "/a", value: null }], want: { a: null } }],
    ["remove the last array element", { doc: { a: [1, 2] }, patch: [{ op: "remove", path: "/a/1" }], want: { a: [1] } }],
    ["remove a null member", { doc: { a: null }, patch: [{ op: "remove", path: "/a" }], want: {} }],
    ["move to itself", { doc: { a: 1 }, patch: [{ op: "move", from: "/a", path: "/a" }], want: { a: 1 } }],
    ["move the whole document onto itself", { doc: { a: 1 }, patch: [{ op: "move", from: "", path: "" }], want: { a: 1 } }],
    [
      "move a child over the whole document",
      { doc: { a: { b: 1 } }, patch: [{ op: "move", from: "/a", path: "" }], want: { b: 1 } },
    ],
    [
      "move to a sibling with a common prefix name",
      { doc: { a: 1 }, patch: [{ op: "move", from: "/a", path: "/ab" }], want: { ab: 1 } },
    ],
    ["copy into an array", { doc: { a: 1, b: [] }, patch: [{ op: "copy", from: "/a", path: "/b/-" }], want: { a: 1, b: [1] } }],
    [
      "copy the whole document into a member",
      { doc: { a: 1 }, patch: [{ op: "copy", from: "", path: "/b" }], want: { a: 1, b: { a: 1 } } },
    ],
    ["test the whole document", { doc: { a: [1] }, patch: [{ op: "test", path: "", value: { a: [1] } }], want: { a: [1] } }],
    [
      "test objects in any member order",
      { doc: { a: { x: 1, y: 2 } }, patch: [{ op: "test", path: "/a", value: { y: 2, x: 1 } }], want: { a: { x: 1, y: 2 } } },
    ],
    ["test 0 equals -0", { doc: { a: 0 }, patch: [{ op: "test", path: "/a", value: -0 }], want: { a: 0 } }],
    ["test null", { doc: { a: null }, patch: [{ op: "test", path: "/a", value: null }], want: { a: null } }],
    [
      "operations see earlier ones",
      {
        doc: {},
        patch: [
          { op: "add", path: "/a", value: { b: [] } },
          { op: "add", path: "/a/b/-", value: 1 },
          { op: "copy", from: "/a", path: "/c" },
          { op: "replace", path: "/a/b/0", value: 2 },
          { op: "test", path: "/c/b/0", value: 1 },
        ],
        want: { a: { b: [2] }, c: { b: [1] } },
      },
    ],
    [
      "an intermediate non-object root is allowed",
      {
        doc: { a: 1 },
        patch: [
          { op: "replace", path: "", value: 5 },
          { op: "replace", path: "", value: { b: 1 } },
        ],
        want: { b: 1 },
      },
    ],
    [
      "constructor and prototype are plain members",
      {
        doc: {},
        patch: [
          { op: "add", path: "/constructor", value: { prototype: {} } },
          { op: "add", path: "/constructor/prototype/polluted", value: true },
          { op: "test", path: "/constructor/prototype", value: { polluted: true } },
        ],
        want: { constructor: { prototype: { polluted: true } } },
      },
    ],
  ];
  it.each(succeeds)("%s", (_, given) => {
    expect(applyJsonPatch(given.doc, given.patch)).toEqual(given.want);
  });

  const fails: [string, { doc: JsonObject; patch: JsonPatchOperation[]; error: ErrorClass }][] = [
    ["a test that is unequal", { doc: { a: 1 }, patch: [{ op: "test", path: "/a", value: 2 }], error: TestFailedError }],
    ["a test of a missing member", { doc: {}, patch: [{ op: "test", path: "/a", value: null }], error: TestFailedError }],
    [
      "a test of an inherited name",
      { doc: {}, patch: [{ op: "test", path: "/constructor", value: {} }], error: TestFailedError },
    ],
    ["a test through a scalar", { doc: { a: 1 }, patch: [{ op: "test", path: "/a/b", value: 1 }], error: TestFailedError }],
    [
      "a test of an array against an object",
      { doc: { a: [] }, patch: [{ op: "test", path: "/a", value: {} }], error: TestFailedError },
    ],
    [
      "a test with an extra member",
      { doc: { a: { x: 1 } }, patch: [{ op: "test", path: "/a", value: { x: 1, y: 2 } }], error: TestFailedError },
    ],
    ["remove of a missing member", { doc: {}, patch: [{ op: "remove", path: "/a" }], error: PatchConflictError }],
    ["remove of an inherited name", { doc: {}, patch: [{ op: "remove", path: "/toString" }], error: PatchConflictError }],
    ["remove of the whole document", { doc: {}, patch: [{ op: "remove", path: "" }], error: PatchConflictError }],
    ["remove of an index out of range", { doc: { a: [1] }, patch: [{ op: "remove", path: "/a/1" }], error: PatchConflictError }],
    ["remove of -", { doc: { a: [1] }, patch: [{ op: "remove", path: "/a/-" }], error: PatchConflictError }],
    ["replace of a missing member", { doc: {}, patch: [{ op: "replace", path: "/a", value: 1 }], error: PatchConflictError }],
    ["replace of -", { doc: { a: [1] }, patch: [{ op: "replace", path: "/a/-", value: 1 }], error: PatchConflictError }],
    [
      "replace at index == length",
      { doc: { a: [1] }, patch: [{ op: "replace", path: "/a/1", value: 1 }], error: PatchConflictError },
    ],
    [
      "replace of the whole document with a number",
      { doc: { a: "" }, patch: [{ op: "replace", path: "", value: 5 }], error: PatchConflictError },
    ],
    [
      "add of an array as the whole document",
      { doc: {}, patch: [{ op: "add", path: "", value: [] }], error: PatchConflictError },
    ],
    [
      "add beyond the end of an array",
      { doc: { a: [1] }, patch: [{ op: "add", path: "/a/2", value: 1 }], error: PatchConflictError },
    ],
    [
      "add at an index with a leading zero",
      { doc: { a: [1] }, patch: [{ op: "add", path: "/a/01", value: 1 }], error: PatchConflictError },
    ],
    ["add at a negative index", { doc: { a: [1] }, patch: [{ op: "add", path: "/a/-1", value: 1 }], error: PatchConflictError }],
    [
      "add at an exponent index",
      { doc: { a: [1] }, patch: [{ op: "add", path: "/a/1e0", value: 1 }], error: PatchConflictError },
    ],
    [
      "add at a named array member",
      { doc: { a: [1] }, patch: [{ op: "add", path: "/a/length", value: 0 }], error: PatchConflictError },
    ],
    [
      "add at an empty array index",
      { doc: { a: [1] }, patch: [{ op: "add", path: "/a/", value: 0 }], error: PatchConflictError },
    ],
    ["add through a scalar", { doc: { a: 1 }, patch: [{ op: "add", path: "/a/b", value: 1 }], error: PatchConflictError }],
    ["add through null", { doc: { a: null }, patch: [{ op: "add", path: "/a/b", value: 1 }], error: PatchConflictError }],
    ["add through a string", { doc: { a: "text" }, patch: [{ op: "add", path: "/a/0", value: 1 }], error: PatchConflictError }],
    [
      "add through a missing array element",
      { doc: { a: [] }, patch: [{ op: "add", path: "/a/0/b", value: 1 }], error: PatchConflictError },
    ],
    [
      "add through a bad index",
      { doc: { a: [{}] }, patch: [{ op: "add", path: "/a/00/b", value: 1 }], error: PatchConflictError },
    ],
    [
      "add through an inherited name",
      { doc: {}, patch: [{ op: "add", path: "/constructor/prototype", value: 1 }], error: PatchConflictError },
    ],
    [
      "move into its own child",
      { doc: { a: { b: {} } }, patch: [{ op: "move", from: "/a", path: "/a/b/c" }], error: PatchConflictError },
    ],
    [
      "move of the whole document into a child",
      { doc: { a: 1 }, patch: [{ op: "move", from: "", path: "/b" }], error: PatchConflictError },
    ],
    ["move of a missing member", { doc: {}, patch: [{ op: "move", from: "/a", path: "/b" }], error: PatchConflictError }],
    [
      "move of a scalar over the whole document",
      { doc: { a: 1 }, patch: [{ op: "move", from: "/a", path: "" }], error: PatchConflictError },
    ],
    ["copy of a missing member", { doc: {}, patch: [{ op: "copy", from: "/a", path: "/b" }], error: PatchConflictError }],
    [
      "copy of an inherited name",
      { doc: {}, patch: [{ op: "copy", from: "/hasOwnProperty", path: "/b" }], error: PatchConflictError },
    ],
    ["copy to a missing parent", { doc: { a: 1 }, patch: [{ op: "copy", from: "/a", path: "/x/y" }], error: PatchConflictError }],
    [
      "a result nested deeper than 64",
      {
        doc: { a: JSON.parse('{"b":'.repeat(62) + "1" + "}".repeat(62)) },
        patch: [
          { op: "add", path: "/c", value: { d: { e: {} } } },
          { op: "copy", from: "/a", path: "/c/d/e/f" },
        ],
        error: PatchConflictError,
      },
    ],
    ["a pointer without a leading slash", { doc: { a: 1 }, patch: [{ op: "remove", path: "a" }], error: InvalidDocumentError }],
    ["a bad escape", { doc: { a: 1 }, patch: [{ op: "add", path: "/~2", value: 1 }], error: InvalidDocumentError }],
    [
      "a __proto__ path",
      { doc: {}, patch: [{ op: "add", path: "/__proto__/polluted", value: true }], error: InvalidDocumentError },
    ],
    [
      "a __proto__ member name",
      { doc: {}, patch: [{ op: "add", path: "/__proto__", value: { polluted: true } }], error: InvalidDocumentError },
    ],
    ["a __proto__ from", { doc: {}, patch: [{ op: "copy", from: "/__proto__", path: "/a" }], error: InvalidDocumentError }],
    [
      "a __proto__ key in a value",
      {
        doc: {},
        patch: [{ op: "add", path: "/a", value: JSON.parse('{"__proto__": {"polluted": true}}') }],
        error: InvalidDocumentError,
      },
    ],
    [
      "a value nested deeper than 64",
      {
        doc: {},
        patch: [{ op: "add", path: "/a", value: JSON.parse("[".repeat(65) + "]".repeat(65)) }],
        error: InvalidDocumentError,
      },
    ],
    ["a missing value", { doc: {}, patch: [{ op: "add", path: "/a" } as JsonPatchOperation], error: InvalidDocumentError }],
    [
      "an unknown op",
      { doc: {}, patch: [{ op: "merge", path: "/a", value: 1 } as unknown as JsonPatchOperation], error: InvalidDocumentError },
    ],
  ];
  it.each(fails)("refuses %s", (_, given) => {
    expect(() => applyJsonPatch(given.doc, given.patch)).toThrow(given.error);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });

  it("checks every operation before applying any", () => {
    const doc: JsonObject = { a: 1 };
    const operations: JsonPatchOperation[] = [
      { op: "remove", path: "/a" },
      { op: "add", path: "/__proto__", value: 1 },
    ];
    expect(() => applyJsonPatch(doc, operations)).toThrow(InvalidDocumentError);
    expect(doc).toEqual({ a: 1 });
  });

  it("copies deeply, so later changes do not alias", () => {
    const result = applyJsonPatch({ a: { b: [1] } }, [
      { op: "copy", from: "/a", path: "/c" },
      { op: "add", path: "/c/b/-", value: 2 },
      { op: "replace", path: "/a/b/0", value: 0 },
    ]);
    expect(result).toEqual({ a: { b: [0] }, c: { b: [1, 2] } });
  });

  it("does not change the values of the request", () => {
    const value = { b: [1] };
    applyJsonPatch({}, [
      { op: "add", path: "/a", value },
      { op: "add", path: "/a/b/-", value: 2 },
    ]);
    expect(value).toEqual({ b: [1] });
  });

  it("stores constructor as data and leaves Object.prototype alone", () => {
    const result = applyJsonPatch({}, [
      { op: "add", path: "/constructor", value: {} },
      { op: "add", path: "/constructor/prototype", value: {} },
      { op: "add", path: "/constructor/prototype/polluted", value: true },
    ]);
    expect(Object.hasOwn(result, "constructor")).toBe(true);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
  });

  it("refuses a very long path as a conflict", () => {
    expect(() => applyJsonPatch({}, [{ op: "add", path: "/a".repeat(100_000), value: 1 }])).toThrow(PatchConflictError);
  });
});
