import type { JsonValue } from "./json-value.js";

/**
 * Deep equality of JSON values: same type, numbers by `===` (so `0` equals `-0`, which
 * `util.isDeepStrictEqual` denies), arrays element by element, objects by their own members
 * in any order.
 *
 * @example
 * jsonEqual({ a: [1, { b: 0 }] }, { a: [1, { b: -0 }] }); // true
 */
export function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) {
      if (!jsonEqual(a[i]!, b[i]!)) return false;
    }
    return true;
  }
  if (Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(b, key) || !jsonEqual(a[key]!, b[key]!)) return false;
  }
  return true;
}
