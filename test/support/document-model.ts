import type { JsonObject, JsonValue } from "../../server/documents/json-value.js";

/*
 * A deliberately small, independent reading of RFC 7396, RFC 6902 and the `ops` rules of docs/design.md,
 * written from the documents rather than from server/entities, so that the model tests compare
 * two implementations instead of one implementation with itself. Documents are treated as
 * immutable: every change returns new values.
 */

export type DocumentFailure = "test-failed" | "patch-conflict" | { conditionIndex: number };

/** The outcome of applying a change to a document: the new document or why it failed. */
type DocumentResult = { ok: true; doc: JsonObject } | { ok: false; failure: DocumentFailure };

export type PatchOperation =
  | { op: "add" | "replace" | "test"; path: string; value: JsonValue }
  | { op: "remove"; path: string }
  | { op: "move" | "copy"; from: string; path: string };

export type OpsCondition =
  { path: string; op: "eq" | "ne" | "lt" | "lte" | "gt" | "gte"; value: JsonValue } | { path: string; op: "exists" | "absent" };

export type OpsOperation =
  | { op: "set" | "append"; path: string; value: JsonValue }
  | { op: "inc"; path: string; value: number }
  | { op: "remove"; path: string };

export interface OpsBody {
  if: OpsCondition[];
  do: OpsOperation[];
  upsert: boolean;
}

/** A failure inside a document function; caught at the top and turned into a result. */
class Failure extends Error {
  constructor(readonly failure: DocumentFailure) {
    super(typeof failure === "string" ? failure : `condition ${failure.conditionIndex}`);
  }
}

const conflict = (): never => {
  throw new Failure("patch-conflict");
};

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function deepEqual(a: JsonValue, b: JsonValue): boolean {
  return canonical(a) === canonical(b);
}

/** JSON text with object members sorted, so that member order does not count. */
export function canonical(value: JsonValue): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (isObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonical(value[key]!)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function clone<T extends JsonValue>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** An object with one member changed, built without assignment so no key is special. */
function withMember(object: JsonObject, key: string, value: JsonValue): JsonObject {
  const copy: JsonObject = {};
  for (const [k, v] of Object.entries(object))
    Object.defineProperty(copy, k, { value: v, enumerable: true, writable: true, configurable: true });
  Object.defineProperty(copy, key, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

function withoutMember(object: JsonObject, key: string): JsonObject {
  return Object.fromEntries(Object.entries(object).filter(([k]) => k !== key)) as JsonObject;
}

function member(object: JsonObject, key: string): JsonValue | undefined {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

/** RFC 6901 tokens; the paths the tests generate are all well-formed. */
function tokens(pointer: string): string[] {
  if (pointer === "") return [];
  return pointer
    .slice(1)
    .split("/")
    .map((token) => token.replaceAll("~1", "/").replaceAll("~0", "~"));
}

/** An array index as RFC 6901 writes it ("0" or no leading zero), else undefined. */
function index(token: string): number | undefined {
  return /^(0|[1-9][0-9]*)$/.test(token) ? Number(token) : undefined;
}

/** The value a path names, or undefined for anything that names nothing. */
function valueAt(doc: JsonValue, path: string[]): JsonValue | undefined {
  let node: JsonValue | undefined = doc;
  for (const token of path) {
    if (Array.isArray(node)) {
      const i = index(token);
      node = i === undefined ? undefined : node[i];
    } else if (isObject(node)) {
      node = member(node, token);
    } else {
      return undefined;
    }
    if (node === undefined) return undefined;
  }
  return node;
}

/**
 * Rebuilds `node` with `edit` applied to the container at `path` (the parent of the target).
 * `create` makes missing object members `{}` on the way (ops); without it they are a conflict.
 */
function editContainer(
  node: JsonValue,
  path: string[],
  create: boolean,
  edit: (container: JsonObject | JsonValue[]) => JsonValue,
): JsonValue {
  if (path.length === 0) {
    if (!isObject(node) && !Array.isArray(node)) return conflict();
    return edit(node);
  }
  const [head, ...rest] = path as [string, ...string[]];
  if (Array.isArray(node)) {
    const i = index(head);
    if (i === undefined || i >= node.length) return conflict();
    const copy = [...node];
    copy[i] = editContainer(node[i]!, rest, create, edit);
    return copy;
  }
  if (!isObject(node)) return conflict();
  const next = member(node, head);
  if (next === undefined && !create) return conflict();
  return withMember(node, head, editContainer(next === undefined ? {} : next, rest, create, edit));
}

function addAt(doc: JsonValue, path: string[], value: JsonValue): JsonValue {
  if (path.length === 0) return value;
  const key = path.at(-1)!;
  return editContainer(doc, path.slice(0, -1), false, (container) => {
    if (!Array.isArray(container)) return withMember(container, key, value);
    const i = key === "-" ? container.length : index(key);
    if (i === undefined || i > container.length) return conflict();
    return [...container.slice(0, i), value, ...container.slice(i)];
  });
}

function removeAt(doc: JsonValue, path: string[]): JsonValue {
  if (path.length === 0) return conflict();
  const key = path.at(-1)!;
  return editContainer(doc, path.slice(0, -1), false, (container) => {
    if (!Array.isArray(container)) return Object.hasOwn(container, key) ? withoutMember(container, key) : conflict();
    const i = index(key);
    if (i === undefined || i >= container.length) return conflict();
    return [...container.slice(0, i), ...container.slice(i + 1)];
  });
}

function patchStep(doc: JsonValue, step: PatchOperation): JsonValue {
  const path = tokens(step.path);
  switch (step.op) {
    case "add":
      return addAt(doc, path, step.value);
    case "remove":
      return removeAt(doc, path);
    case "replace":
      if (path.length === 0) return step.value;
      if (valueAt(doc, path) === undefined || path.at(-1) === "-") return conflict();
      return addAt(removeAt(doc, path), path, step.value);
    case "test": {
      const actual = valueAt(doc, path);
      if (actual === undefined || !deepEqual(actual, step.value)) throw new Failure("test-failed");
      return doc;
    }
    case "move": {
      const from = tokens(step.from);
      if (from.length < path.length && from.every((token, i) => token === path[i])) return conflict();
      const value = valueAt(doc, from);
      if (value === undefined) return conflict();
      return addAt(removeAt(doc, from), path, value);
    }
    case "copy": {
      const value = valueAt(doc, tokens(step.from));
      if (value === undefined) return conflict();
      return addAt(doc, path, clone(value));
    }
  }
}

function result(run: () => JsonValue): DocumentResult {
  try {
    const doc = run();
    return isObject(doc) ? { ok: true, doc } : { ok: false, failure: "patch-conflict" };
  } catch (error) {
    if (error instanceof Failure) return { ok: false, failure: error.failure };
    throw error;
  }
}

/** RFC 6902, all or nothing; the result must be an object. */
export function jsonPatchModel(doc: JsonObject, patch: PatchOperation[]): DocumentResult {
  return result(() => patch.reduce<JsonValue>(patchStep, doc));
}

/** RFC 7396. */
export function mergePatchModel(target: JsonValue | undefined, patch: JsonValue): JsonValue {
  if (!isObject(patch)) return clone(patch);
  let merged: JsonObject = isObject(target) ? target : {};
  for (const [key, value] of Object.entries(patch)) {
    merged = value === null ? withoutMember(merged, key) : withMember(merged, key, mergePatchModel(member(merged, key), value));
  }
  return merged;
}

function conditionHolds(doc: JsonObject, condition: OpsCondition): boolean {
  const actual = valueAt(doc, tokens(condition.path));
  switch (condition.op) {
    case "exists":
      return actual !== undefined;
    case "absent":
      return actual === undefined;
    case "eq":
      return actual !== undefined && deepEqual(actual, condition.value);
    case "ne":
      return actual === undefined || !deepEqual(actual, condition.value);
    default: {
      const expected = condition.value;
      const comparable =
        (typeof actual === "number" && typeof expected === "number") ||
        (typeof actual === "string" && typeof expected === "string");
      if (!comparable) return false;
      const [a, b] = [actual as number | string, expected as number | string];
      return { lt: a < b, lte: a <= b, gt: a > b, gte: a >= b }[condition.op];
    }
  }
}

/** The `set`/`inc`/`append`: the target slot of a container, replaced or appended. */
function putIn(container: JsonObject | JsonValue[], key: string, value: JsonValue): JsonValue {
  if (!Array.isArray(container)) return withMember(container, key, value);
  const i = key === "-" ? container.length : index(key);
  if (i === undefined || i > container.length) return conflict();
  const copy = [...container];
  copy[i] = value;
  return copy;
}

function readIn(container: JsonObject | JsonValue[], key: string): JsonValue | undefined {
  if (!Array.isArray(container)) return member(container, key);
  if (key === "-") return undefined;
  const i = index(key);
  return i === undefined ? conflict() : container[i];
}

const INC_LIMIT = 2 ** 53;

function opsStep(doc: JsonObject, operation: OpsOperation): JsonObject {
  const path = tokens(operation.path);
  if (path.length === 0) {
    return operation.op === "set" && isObject(operation.value) ? clone(operation.value) : conflict();
  }
  const key = path.at(-1)!;
  const parent = path.slice(0, -1);
  if (operation.op === "remove") {
    // Removing something whose parent is missing is a no-op; a scalar on the way is a conflict.
    let node: JsonValue = doc;
    for (const token of parent) {
      if (Array.isArray(node)) {
        const i: number | undefined = token === "-" ? node.length : index(token);
        if (i === undefined) return conflict();
        if (i >= node.length) return doc;
        node = node[i]!;
      } else if (isObject(node)) {
        const next = member(node, token);
        if (next === undefined) return doc;
        node = next;
      } else {
        return conflict();
      }
    }
    return editContainer(doc, parent, false, (container) => {
      if (!Array.isArray(container)) return withoutMember(container, key);
      const i = key === "-" ? container.length : index(key);
      if (i === undefined) return conflict();
      return [...container.slice(0, i), ...container.slice(i + 1)];
    }) as JsonObject;
  }
  return editContainer(doc, parent, true, (container) => {
    const current = readIn(container, key);
    switch (operation.op) {
      case "set":
        return putIn(container, key, clone(operation.value));
      case "inc": {
        const base = current === undefined ? 0 : current;
        if (typeof base !== "number") return conflict();
        const sum = base + operation.value;
        return Math.abs(sum) < INC_LIMIT ? putIn(container, key, sum) : conflict();
      }
      case "append":
        if (current === undefined) return putIn(container, key, [clone(operation.value)]);
        return Array.isArray(current) ? putIn(container, key, [...current, clone(operation.value)]) : conflict();
    }
  }) as JsonObject;
}

/** `ops` (docs/design.md): every condition, then every operation, all or nothing. */
export function opsModel(doc: JsonObject, body: Pick<OpsBody, "if" | "do">): DocumentResult {
  const failed = body.if.findIndex((condition) => !conditionHolds(doc, condition));
  if (failed >= 0) return { ok: false, failure: { conditionIndex: failed } };
  return result(() => body.do.reduce(opsStep, doc));
}
