import { InvalidDocumentError, PatchConflictError } from "./document-errors.js";
import { formatPointer } from "./json-pointer.js";
import { isJsonObject, type JsonObject, type JsonValue } from "./json-value.js";

/*
 * Walking parsed JSON Pointers through a document, shared by JSON Patch and `ops`. Every
 * member lookup goes through Object.hasOwn, so "constructor" or "toString" are found only as
 * data, and array elements are named only by canonical indices (or "-"), never "length".
 */

/** A member of an object, or an element slot of an array, to read or change. */
export interface Location {
  readonly parent: JsonObject | JsonValue[];
  /** The last pointer segment: a member name or an array index (or "-"). */
  readonly key: string;
  /** All the segments up to and including `key`, for messages. */
  readonly path: readonly string[];
}

/** What {@link resolveParent} does when a member on the way does not exist. */
export type MissingParents = "fail" | "create";

const MISSING = Symbol("missing");
const BAD_INDEX = Symbol("bad index");
const NOT_CONTAINER = Symbol("not a container");
type Miss = typeof MISSING | typeof BAD_INDEX | typeof NOT_CONTAINER;

/** RFC 6901: "0", or digits without a leading zero. */
function arrayIndex(segment: string): number | undefined {
  const length = segment.length;
  if (length === 0) return undefined;
  const first = segment.charCodeAt(0);
  if (first === 0x30) return length === 1 ? 0 : undefined;
  for (let i = 0; i < length; i++) {
    const code = segment.charCodeAt(i);
    if (code < 0x30 || code > 0x39) return undefined;
  }
  return Number(segment);
}

function child(node: JsonValue, segment: string): JsonValue | Miss {
  if (Array.isArray(node)) {
    if (segment === "-") return MISSING;
    const index = arrayIndex(segment);
    if (index === undefined) return BAD_INDEX;
    return index < node.length ? node[index]! : MISSING;
  }
  if (isJsonObject(node)) return Object.hasOwn(node, segment) ? node[segment]! : MISSING;
  return NOT_CONTAINER;
}

function badIndex(path: readonly string[]): PatchConflictError {
  return new PatchConflictError(`"${formatPointer(path)}": "${path.at(-1)}" is not an array index`);
}

/**
 * Stores `value` as the member `key` of `object`.
 *
 * @throws InvalidDocumentError for `__proto__`, which a plain assignment would turn into a
 *   prototype change. parsePointer refuses it already; this guards every other caller.
 * @example
 * setMember(data, "constructor", "plain data");
 */
export function setMember(object: JsonObject, key: string, value: JsonValue): void {
  if (key === "__proto__") throw new InvalidDocumentError("__proto__ cannot be a member name");
  object[key] = value;
}

/**
 * Reads the value a path names, or `undefined` when the path names nothing: a missing member,
 * an index out of range or not canonical, or a step through a scalar.
 *
 * @example
 * getValue({ a: [{ b: 1 }] }, ["a", "0", "b"]); // 1
 * getValue({}, ["constructor"]); // undefined
 */
export function getValue(root: JsonValue, path: readonly string[]): JsonValue | undefined {
  let node = root;
  for (const segment of path) {
    const next = child(node, segment);
    if (typeof next === "symbol") return undefined;
    node = next;
  }
  return node;
}

function walk(root: JsonValue, path: readonly string[], missing: MissingParents | "stop"): Location | undefined {
  const key = path.at(-1);
  if (key === undefined) throw new PatchConflictError("the whole document has no parent");
  let node = root;
  for (let i = 0; i < path.length - 1; i++) {
    const segment = path[i]!;
    const next = child(node, segment);
    if (next === MISSING) {
      if (missing === "stop") return undefined;
      if (missing === "fail" || !isJsonObject(node)) {
        throw new PatchConflictError(`"${formatPointer(path.slice(0, i + 1))}" does not exist`);
      }
      const created: JsonObject = {};
      setMember(node, segment, created);
      node = created;
    } else if (next === BAD_INDEX) {
      throw badIndex(path.slice(0, i + 1));
    } else if (next === NOT_CONTAINER) {
      throw new PatchConflictError(`"${formatPointer(path.slice(0, i))}" is not an object or array`);
    } else {
      node = next;
    }
  }
  if (!Array.isArray(node) && !isJsonObject(node)) {
    throw new PatchConflictError(`"${formatPointer(path.slice(0, -1))}" is not an object or array`);
  }
  return { parent: node, key, path };
}

/**
 * Finds the container that holds the last segment of a non-empty path. With `"create"`, missing
 * object members on the way become `{}`; a missing array element is never created.
 *
 * @throws PatchConflictError when the path steps through a scalar, uses a bad array index, or
 *   (with `"fail"`) names a missing parent; or when the path is empty.
 * @example
 * const location = resolveParent(data, ["a", "b"], "create"); // data.a is now {} if it was missing
 */
export function resolveParent(root: JsonValue, path: readonly string[], missing: MissingParents): Location {
  return walk(root, path, missing)!;
}

/**
 * Like {@link resolveParent} with `"fail"`, but answers `undefined` when a parent is missing.
 *
 * @throws PatchConflictError when the path steps through a scalar or uses a bad array index.
 * @example
 * const location = findParent(data, ["hold", "until"]); // undefined if data.hold is missing
 */
export function findParent(root: JsonValue, path: readonly string[]): Location | undefined {
  return walk(root, path, "stop");
}

/**
 * Reads the member or element at a location, `undefined` when absent (`-` names no element).
 *
 * @throws PatchConflictError when an array is addressed by a non-index.
 * @example
 * readChild(resolveParent(data, ["a", "b"], "fail"));
 */
export function readChild(location: Location): JsonValue | undefined {
  const value = child(location.parent, location.key);
  if (value === BAD_INDEX) throw badIndex(location.path);
  return typeof value === "symbol" ? undefined : value;
}

function elementIndex(location: Location, array: JsonValue[]): number {
  if (location.key === "-") return array.length;
  const index = arrayIndex(location.key);
  if (index === undefined) throw badIndex(location.path);
  return index;
}

function outOfRange(location: Location): PatchConflictError {
  return new PatchConflictError(`"${formatPointer(location.path)}": array index out of range`);
}

/**
 * RFC 6902 `add`: sets an object member, or inserts into an array before the index (at the end
 * for `-` or an index equal to the length).
 *
 * @throws PatchConflictError for an index beyond the length or a non-index.
 * @example
 * insertChild(resolveParent(data, ["list", "0"], "fail"), "first");
 */
export function insertChild(location: Location, value: JsonValue): void {
  const { parent } = location;
  if (!Array.isArray(parent)) return setMember(parent, location.key, value);
  const index = elementIndex(location, parent);
  if (index > parent.length) throw outOfRange(location);
  parent.splice(index, 0, value);
}

/**
 * Sets an object member, replaces an array element, or appends to an array (for `-` or an
 * index equal to the length).
 *
 * @throws PatchConflictError for an index beyond the length or a non-index.
 * @example
 * putChild(resolveParent(data, ["status"], "create"), "open");
 */
export function putChild(location: Location, value: JsonValue): void {
  const { parent } = location;
  if (!Array.isArray(parent)) return setMember(parent, location.key, value);
  const index = elementIndex(location, parent);
  if (index > parent.length) throw outOfRange(location);
  parent[index] = value;
}

/**
 * Removes an object member or array element and returns it, or `undefined` when there was none.
 *
 * @throws PatchConflictError when an array is addressed by a non-index.
 * @example
 * const removed = removeChild(resolveParent(data, ["hold"], "fail"));
 */
export function removeChild(location: Location): JsonValue | undefined {
  const { parent } = location;
  if (!Array.isArray(parent)) {
    if (!Object.hasOwn(parent, location.key)) return undefined;
    const value = parent[location.key]!;
    delete parent[location.key];
    return value;
  }
  const index = elementIndex(location, parent);
  if (index >= parent.length) return undefined;
  return parent.splice(index, 1)[0]!;
}
