import { InvalidDocumentError, PatchConflictError } from "./document-errors.js";
import type { JsonObject, JsonValue } from "./json-value.js";

/** The deepest nesting a document may have: `{}` and `[]` are one level each. */
export const MAX_DOCUMENT_DEPTH = 64;

function findViolation(value: unknown, maxDepth: number): string | undefined {
  // An explicit stack: hostile input such as 1 MiB of "[[[[" must not exhaust the call stack,
  // and the walk stops as soon as one level too many is seen.
  const values: unknown[] = [value];
  const depths: number[] = [0];
  while (values.length > 0) {
    const node = values.pop();
    const depth = depths.pop()! + 1;
    if (typeof node !== "object" || node === null) continue;
    if (depth > maxDepth) return `the document is nested deeper than ${maxDepth} levels`;
    if (Array.isArray(node)) {
      for (const item of node as unknown[]) {
        if (typeof item === "object" && item !== null) {
          values.push(item);
          depths.push(depth);
        }
      }
      continue;
    }
    // JSON.parse creates "__proto__" as an own data property, which later spreads or plain
    // assignments would turn into a prototype change.
    if (Object.hasOwn(node, "__proto__")) return "the document has a __proto__ key";
    for (const key of Object.keys(node)) {
      const item = (node as Record<string, unknown>)[key];
      if (typeof item === "object" && item !== null) {
        values.push(item);
        depths.push(depth);
      }
    }
  }
  return undefined;
}

/**
 * Refuses a value that is nested deeper than `maxDepth` or has an own `__proto__` key anywhere.
 * Scalars are depth 0, `{}` and `[]` depth 1, so 64 nested levels pass and 65 fail.
 *
 * @throws InvalidDocumentError naming the violation.
 * @example
 * assertSafeDocument(JSON.parse('{"a": [1, {"b": 2}]}')); // passes, depth 3
 * assertSafeDocument(JSON.parse('{"__proto__": {}}')); // throws
 */
export function assertSafeDocument(value: unknown, maxDepth = MAX_DOCUMENT_DEPTH): void {
  const violation = findViolation(value, maxDepth);
  if (violation !== undefined) throw new InvalidDocumentError(violation);
}

/**
 * Refuses the result of applying a patch or `ops` to a document when it breaks the limits: the
 * request was well-formed, but it cannot apply to this document (e.g. it nests a deep value
 * under a deep path).
 *
 * @throws PatchConflictError naming the violation.
 * @example
 * assertSafeResult(applyOps(doc, request));
 */
export function assertSafeResult(document: JsonObject, maxDepth = MAX_DOCUMENT_DEPTH): void {
  const violation = findViolation(document, maxDepth);
  if (violation !== undefined) throw new PatchConflictError(`the result is refused: ${violation}`);
}

/**
 * Checks a value taken from a request (a patch or `ops` operand) and returns a private deep copy,
 * so that later operations of the same request never alias the request or each other.
 *
 * @throws InvalidDocumentError when the value is missing, too deep or has a `__proto__` key.
 * @example
 * const value = copySafeValue(operation.value);
 */
export function copySafeValue(value: unknown): JsonValue {
  if (value === undefined) throw new InvalidDocumentError("the operation has no value");
  assertSafeDocument(value);
  return structuredClone(value) as JsonValue;
}
