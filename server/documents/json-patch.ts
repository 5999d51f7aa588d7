import { copySafeValue, assertSafeResult } from "./document-limits.js";
import { getValue, insertChild, putChild, readChild, removeChild, resolveParent } from "./document-path.js";
import { InvalidDocumentError, PatchConflictError, TestFailedError } from "./document-errors.js";
import { jsonEqual } from "./json-equal.js";
import { formatPointer, parsePointer } from "./json-pointer.js";
import { isJsonObject, type JsonObject, type JsonPatchOperation, type JsonValue } from "./json-value.js";

type Step =
  | { op: "add" | "replace" | "test"; path: string[]; value: JsonValue }
  | { op: "remove"; path: string[] }
  | { op: "move" | "copy"; from: string[]; path: string[] };

function parseStep(operation: JsonPatchOperation, index: number): Step {
  switch (operation.op) {
    case "add":
    case "replace":
    case "test":
      return { op: operation.op, path: parsePointer(operation.path), value: copySafeValue(operation.value) };
    case "remove":
      return { op: operation.op, path: parsePointer(operation.path) };
    case "move":
    case "copy":
      return { op: operation.op, from: parsePointer(operation.from), path: parsePointer(operation.path) };
    default:
      throw new InvalidDocumentError(`operation ${index} has an unknown op`);
  }
}

function isProperPrefix(prefix: readonly string[], path: readonly string[]): boolean {
  if (prefix.length >= path.length) return false;
  return prefix.every((segment, i) => segment === path[i]);
}

function add(root: JsonValue, path: string[], value: JsonValue): JsonValue {
  if (path.length === 0) return value;
  insertChild(resolveParent(root, path, "fail"), value);
  return root;
}

function take(root: JsonValue, path: string[]): JsonValue {
  if (path.length === 0) throw new PatchConflictError("the whole document cannot be removed");
  const removed = removeChild(resolveParent(root, path, "fail"));
  if (removed === undefined) throw new PatchConflictError(`"${formatPointer(path)}" does not exist`);
  return removed;
}

function applyStep(root: JsonValue, step: Step): JsonValue {
  switch (step.op) {
    case "add":
      return add(root, step.path, step.value);
    case "remove":
      take(root, step.path);
      return root;
    case "replace": {
      if (step.path.length === 0) return step.value;
      const location = resolveParent(root, step.path, "fail");
      if (readChild(location) === undefined) {
        throw new PatchConflictError(`"${formatPointer(step.path)}" does not exist`);
      }
      putChild(location, step.value);
      return root;
    }
    case "move": {
      if (isProperPrefix(step.from, step.path)) {
        throw new PatchConflictError(
          `cannot move "${formatPointer(step.from)}" into its own child "${formatPointer(step.path)}"`,
        );
      }
      if (step.from.length === 0) return root;
      return add(root, step.path, take(root, step.from));
    }
    case "copy": {
      const value = getValue(root, step.from);
      if (value === undefined) throw new PatchConflictError(`"${formatPointer(step.from)}" does not exist`);
      return add(root, step.path, structuredClone(value));
    }
    case "test": {
      const value = getValue(root, step.path);
      if (value === undefined || !jsonEqual(value, step.value)) {
        throw new TestFailedError(`test of "${formatPointer(step.path)}" failed`);
      }
      return root;
    }
  }
}

/**
 * Applies an RFC 6902 JSON Patch, all or nothing. Every pointer and value is checked before
 * the first operation runs; `doc` may be changed in place, so on error the caller discards it.
 * A `test` whose path names nothing fails like an unequal one.
 *
 * @throws InvalidDocumentError for a bad pointer, a `__proto__` segment or key, or a bad operation.
 * @throws TestFailedError when a `test` is false.
 * @throws PatchConflictError when an operation cannot apply, or the result is not an object or
 *   is nested deeper than the limit.
 * @example
 * applyJsonPatch({ a: 1 }, [{ op: "test", path: "/a", value: 1 }, { op: "remove", path: "/a" }]); // {}
 */
export function applyJsonPatch(doc: JsonObject, patch: readonly JsonPatchOperation[]): JsonObject {
  if (!Array.isArray(patch)) throw new InvalidDocumentError("a JSON Patch must be an array");
  const steps = patch.map(parseStep);
  let root: JsonValue = doc;
  for (const step of steps) root = applyStep(root, step);
  if (!isJsonObject(root)) throw new PatchConflictError("the patched document is not an object");
  assertSafeResult(root);
  return root;
}
