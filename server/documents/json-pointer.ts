import { InvalidDocumentError } from "./document-errors.js";

const ESCAPE = /~([01])/g;
const BAD_ESCAPE = /~(?![01])/;

/**
 * Splits an RFC 6901 JSON Pointer into its unescaped reference tokens.
 *
 * `__proto__` is refused as a segment so that no path can ever name an object's prototype.
 *
 * @throws InvalidDocumentError when the pointer is not a string, does not start with `/`, has an
 *   escape other than `~0` or `~1`, or has a `__proto__` segment.
 * @example
 * parsePointer("/a~1b/m~0n/0"); // ["a/b", "m~n", "0"]
 * parsePointer(""); // [] (the whole document)
 */
export function parsePointer(pointer: string): string[] {
  if (typeof pointer !== "string") {
    throw new InvalidDocumentError("a JSON Pointer must be a string");
  }
  if (pointer === "") return [];
  if (pointer.charCodeAt(0) !== 0x2f) {
    throw new InvalidDocumentError(`JSON Pointer "${pointer}" must be empty or start with "/"`);
  }
  const segments = pointer.slice(1).split("/");
  const escaped = pointer.includes("~");
  for (let i = 0; i < segments.length; i++) {
    let segment = segments[i]!;
    if (escaped && segment.includes("~")) {
      if (BAD_ESCAPE.test(segment)) {
        throw new InvalidDocumentError(`JSON Pointer "${pointer}" has an escape other than ~0 or ~1`);
      }
      // One pass, so "~01" becomes "~1" and never "/" (RFC 6901 section 4).
      segment = segment.replace(ESCAPE, (_, digit: string) => (digit === "0" ? "~" : "/"));
      segments[i] = segment;
    }
    if (segment === "__proto__") {
      throw new InvalidDocumentError(`JSON Pointer "${pointer}" has a __proto__ segment`);
    }
  }
  return segments;
}

/**
 * Builds the JSON Pointer for a list of segments; the inverse of {@link parsePointer}.
 *
 * @example
 * formatPointer(["a/b", "m~n"]); // "/a~1b/m~0n"
 */
export function formatPointer(segments: readonly string[]): string {
  let pointer = "";
  for (const segment of segments) {
    pointer += "/" + segment.replaceAll("~", "~0").replaceAll("/", "~1");
  }
  return pointer;
}
