import type { ConditionFailure } from "./json-value.js";

/*
 * Failures of the pure document functions (pointer, patch, merge patch, `ops`). They know
 * neither the entity nor HTTP: the entity store binds them to the entity they were tried on,
 * and server/http/problem-mapper.ts turns each into its problem code.
 */

/** A patch or `ops` document that is well-formed JSON but cannot be meaningful (bad pointer, `__proto__`). */
export class InvalidDocumentError extends Error {}

/** A JSON Patch `test` operation that does not hold. */
export class TestFailedError extends Error {}

export class PatchConflictError extends Error {}

export class ConditionFailedError extends Error {
  constructor(readonly failed: ConditionFailure) {
    super(`condition ${failed.index} (${failed.op} at "${failed.path}") is false`);
  }
}
