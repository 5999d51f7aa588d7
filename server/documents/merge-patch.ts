import { assertSafeDocument } from "./document-limits.js";
import { setMember } from "./document-path.js";
import { InvalidDocumentError } from "./document-errors.js";
import { isJsonObject, type JsonObject } from "./json-value.js";

function merge(target: JsonObject, patch: JsonObject): JsonObject {
  for (const key of Object.keys(patch)) {
    const value = patch[key]!;
    if (value === null) {
      if (Object.hasOwn(target, key)) delete target[key];
    } else if (isJsonObject(value)) {
      const current = Object.hasOwn(target, key) ? target[key] : undefined;
      // A new member is merged into {} rather than copied, so nulls inside it are dropped too.
      setMember(target, key, merge(isJsonObject(current) ? current : {}, value));
    } else {
      setMember(target, key, value);
    }
  }
  return target;
}

/**
 * Applies an RFC 7396 JSON Merge Patch: `null` removes a member, objects merge member by member,
 * anything else (arrays included) replaces. Changes and returns `target`; the result may share
 * values with `patch`.
 *
 * The patch is checked first, so a result is never deeper than the deeper of the two inputs.
 *
 * @throws InvalidDocumentError when the patch is not an object, is nested too deep or has a
 *   `__proto__` key.
 * @example
 * applyMergePatch({ a: 1, b: { c: 2 } }, { a: null, b: { d: 3 } }); // { b: { c: 2, d: 3 } }
 */
export function applyMergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  if (!isJsonObject(patch)) throw new InvalidDocumentError("a merge patch must be an object");
  assertSafeDocument(patch);
  return merge(target, patch);
}
