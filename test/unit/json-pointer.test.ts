import { describe, expect, it } from "vitest";
import { InvalidDocumentError } from "../../server/documents/document-errors.js";
import { formatPointer, parsePointer } from "../../server/documents/json-pointer.js";

describe("parsePointer", () => {
  const valid: [string, { given: string; want: string[] }][] = [
    ["the whole document", { given: "", want: [] }],
    ["the empty member name", { given: "/", want: [""] }],
    ["two empty member names", { given: "//", want: ["", ""] }],
    ["plain segments", { given: "/a/b/0", want: ["a", "b", "0"] }],
    ["~1 is a slash", { given: "/a~1b", want: ["a/b"] }],
    ["~0 is a tilde", { given: "/m~0n", want: ["m~n"] }],
    ["~01 is ~1, not a slash", { given: "/~01", want: ["~1"] }],
    ["~10 is /0", { given: "/~10", want: ["/0"] }],
    ["escapes in several segments", { given: "/~0~1/x/~1~0", want: ["~/", "x", "/~"] }],
    ["spaces and percent signs are literal", { given: "/ /a%20b/c^f", want: [" ", "a%20b", "c^f"] }],
    ["quotes and backslashes are literal", { given: '/i\\j/k"l', want: ["i\\j", 'k"l'] }],
    ["constructor and prototype are ordinary", { given: "/constructor/prototype", want: ["constructor", "prototype"] }],
    ["names that merely contain __proto__", { given: "/__proto__x/x__proto__", want: ["__proto__x", "x__proto__"] }],
    ["a ~0 that spells _proto_ text", { given: "/~0__proto__", want: ["~__proto__"] }],
    ["unicode", { given: "/ü/😀", want: ["ü", "😀"] }],
  ];
  it.each(valid)("parses %s", (_, { given, want }) => {
    expect(parsePointer(given)).toEqual(want);
  });

  const invalid: [string, string][] = [
    ["no leading slash", "a/b"],
    ["a URI fragment", "#/a"],
    ["a lone tilde", "/~"],
    ["a trailing tilde", "/a~"],
    ["~2", "/~2"],
    ["~a", "/~a"],
    ["a tilde in a later segment", "/ok/x~y"],
    ["__proto__ first", "/__proto__"],
    ["__proto__ later", "/a/__proto__/polluted"],
    ["__proto__ with escapes elsewhere", "/a~1b/__proto__"],
  ];
  it.each(invalid)("refuses %s", (_, given) => {
    expect(() => parsePointer(given)).toThrow(InvalidDocumentError);
  });

  it("refuses a value that is not a string", () => {
    expect(() => parsePointer(42 as unknown as string)).toThrow(InvalidDocumentError);
  });

  it("parses a very long pointer", () => {
    const segments = parsePointer("/a".repeat(200_000));
    expect(segments).toHaveLength(200_000);
    expect(segments.every((segment) => segment === "a")).toBe(true);
  });

  it("finds __proto__ at the end of a very long pointer", () => {
    expect(() => parsePointer("/a~0".repeat(50_000) + "/__proto__")).toThrow(InvalidDocumentError);
  });
});

describe("formatPointer", () => {
  const cases: [string, string[]][] = [
    ["", []],
    ["/", [""]],
    ["/a~1b/m~0n", ["a/b", "m~n"]],
    ["/~01", ["~1"]],
    ["/constructor/0", ["constructor", "0"]],
  ];
  it.each(cases)("formats %j and parses it back", (pointer, segments) => {
    expect(formatPointer(segments)).toBe(pointer);
    expect(parsePointer(pointer)).toEqual(segments);
  });
});
