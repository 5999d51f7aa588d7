import { assertSafeResult, copySafeValue } from "./document-limits.js";
import { findParent, getValue, putChild, readChild, removeChild, resolveParent, type Location } from "./document-path.js";
import { ConditionFailedError, InvalidDocumentError, PatchConflictError } from "./document-errors.js";
import { jsonEqual } from "./json-equal.js";
import { formatPointer, parsePointer } from "./json-pointer.js";
import {
  isJsonObject,
  type Condition,
  type ConditionFailure,
  type JsonObject,
  type JsonValue,
  type OpsRequest,
} from "./json-value.js";

/** Increments must stay strictly inside ±2^53, where every integer is exact. */
const INC_LIMIT = 2 ** 53;

type Check =
  | { op: "eq" | "ne" | "lt" | "lte" | "gt" | "gte"; path: string[]; value: JsonValue }
  | { op: "exists" | "absent"; path: string[] };

type Change =
  | { op: "set" | "append"; path: string[]; value: JsonValue }
  | { op: "inc"; path: string[]; value: number }
  | { op: "remove"; path: string[] };

function parseCheck(condition: Condition, index: number): Check {
  switch (condition.op) {
    case "eq":
    case "ne":
    case "lt":
    case "lte":
    case "gt":
    case "gte":
      if (condition.value === undefined) throw new InvalidDocumentError(`condition ${index} has no value`);
      return { op: condition.op, path: parsePointer(condition.path), value: condition.value as JsonValue };
    case "exists":
    case "absent":
      return { op: condition.op, path: parsePointer(condition.path) };
    default:
      throw new InvalidDocumentError(`condition ${index} has an unknown op`);
  }
}

function parseChange(operation: OpsRequest["do"][number], index: number): Change {
  switch (operation.op) {
    case "set":
    case "append":
      return { op: operation.op, path: parsePointer(operation.path), value: copySafeValue(operation.value) };
    case "inc":
      if (typeof operation.value !== "number" || !Number.isFinite(operation.value)) {
        throw new InvalidDocumentError(`operation ${index} (inc) needs a finite number`);
      }
      return { op: operation.op, path: parsePointer(operation.path), value: operation.value };
    case "remove":
      return { op: operation.op, path: parsePointer(operation.path) };
    default:
      throw new InvalidDocumentError(`operation ${index} has an unknown op`);
  }
}

/**
 * Orders strings by their UTF-8 bytes, which is code point order. JS `<` compares UTF-16 code
 * units instead, which puts U+10000 and above before U+E000..U+FFFF.
 */
function compareStrings(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    if (a.charCodeAt(i) !== b.charCodeAt(i)) return a.codePointAt(i)! - b.codePointAt(i)!;
  }
  return a.length - b.length;
}

function compare(actual: JsonValue, expected: JsonValue): number | undefined {
  if (typeof actual === "number" && typeof expected === "number") return actual - expected;
  if (typeof actual === "string" && typeof expected === "string") return compareStrings(actual, expected);
  return undefined;
}

function holds(doc: JsonObject, check: Check): boolean {
  const actual = getValue(doc, check.path);
  switch (check.op) {
    case "exists":
      return actual !== undefined;
    case "absent":
      return actual === undefined;
    case "eq":
      return actual !== undefined && jsonEqual(actual, check.value);
    case "ne":
      return actual === undefined || !jsonEqual(actual, check.value);
    default: {
      if (actual === undefined) return false;
      const order = compare(actual, check.value);
      if (order === undefined) return false;
      switch (check.op) {
        case "lt":
          return order < 0;
        case "lte":
          return order <= 0;
        case "gt":
          return order > 0;
        case "gte":
          return order >= 0;
      }
    }
  }
}

function failure(index: number, condition: Condition, check: Check): ConditionFailure {
  const { path, op } = condition;
  switch (check.op) {
    case "exists":
    case "absent":
      return { index, path, op };
    default:
      return { index, path, op, value: check.value };
  }
}

function increment(location: Location, delta: number): void {
  const stored = readChild(location);
  const current = stored === undefined ? 0 : stored;
  if (typeof current !== "number") {
    throw new PatchConflictError(`"${formatPointer(location.path)}" is not a number`);
  }
  const result = current + delta;
  if (!(Math.abs(result) < INC_LIMIT)) {
    throw new PatchConflictError(`"${formatPointer(location.path)}" would leave the range ±2^53`);
  }
  putChild(location, result);
}

function append(location: Location, value: JsonValue): void {
  const current = readChild(location);
  if (current === undefined) return putChild(location, [value]);
  if (!Array.isArray(current)) {
    throw new PatchConflictError(`"${formatPointer(location.path)}" is not an array`);
  }
  current.push(value);
}

function applyChange(root: JsonObject, change: Change): JsonObject {
  if (change.path.length === 0) {
    if (change.op === "set" && isJsonObject(change.value)) return change.value;
    throw new PatchConflictError(`${change.op} cannot apply to the whole document`);
  }
  switch (change.op) {
    case "set":
      putChild(resolveParent(root, change.path, "create"), change.value);
      break;
    case "remove": {
      const location = findParent(root, change.path);
      if (location !== undefined) removeChild(location);
      break;
    }
    case "inc":
      increment(resolveParent(root, change.path, "create"), change.value);
      break;
    case "append":
      append(resolveParent(root, change.path, "create"), change.value);
      break;
  }
  return root;
}

/**
 * Applies an `ops` request: every condition is checked against `doc` first, in order, then every
 * operation is applied in order. The whole request is validated before anything is evaluated.
 * `doc` may be changed in place, so on error the caller discards it.
 *
 * - `eq`/`ne` compare by deep equality; `lt lte gt gte` compare number with number and string
 *   with string (UTF-8 byte order); across types or on a missing member they are false, except
 *   `ne`, which is true on a missing member. A path through a scalar counts as missing.
 * - `set`, `inc` and `append` create missing parent objects (never array elements). On an array,
 *   an index below the length replaces, the length or `-` appends, beyond is a conflict.
 * - `remove` of a missing member (or of a member under a missing parent) is a no-op, so a retried
 *   or repeated removal succeeds.
 * - `inc` counts a missing member as 0 and must stay strictly inside ±2^53.
 * - `set` of `""` replaces the whole document with an object.
 *
 * @throws InvalidDocumentError for a bad pointer, a `__proto__` segment or key, or a bad operand.
 * @throws ConditionFailedError for the first false condition, naming its index, path, op and value.
 * @throws PatchConflictError when an operation cannot apply, or the result is nested too deep.
 * @example
 * applyOps({ balance: 25 }, {
 *   if: [{ path: "/balance", op: "gte", value: 10 }],
 *   do: [{ op: "inc", path: "/balance", value: -10 }],
 * }); // { balance: 15 }
 */
export function applyOps(doc: JsonObject, request: Pick<OpsRequest, "if" | "do">): JsonObject {
  const conditions = request.if ?? [];
  if (!Array.isArray(conditions) || !Array.isArray(request.do)) {
    throw new InvalidDocumentError('"if" and "do" must be arrays');
  }
  const checks = conditions.map(parseCheck);
  const changes = request.do.map(parseChange);
  for (const [index, check] of checks.entries()) {
    if (holds(doc, check)) continue;
    throw new ConditionFailedError(failure(index, conditions[index]!, check));
  }
  let root = doc;
  for (const change of changes) root = applyChange(root, change);
  assertSafeResult(root);
  return root;
}
