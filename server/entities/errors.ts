import type { ConditionFailure } from "./json-value.js";
import type { Entity } from "./entity.js";

/*
 * The domain's failures. They know nothing about HTTP: server/http/problem-mapper.ts turns each
 * into its problem code. Errors about an existing document carry the entity as it is now
 * (`current`, null when absent) so the caller can decide without another read.
 */

/** A patch or `ops` document that is well-formed JSON but cannot be meaningful (bad pointer, `__proto__`). */
export class InvalidDocumentError extends Error {}

export class EntityNotFoundError extends Error {}

export class VersionMismatchError extends Error {
  constructor(readonly current: Entity | null) {
    super("the entity's version does not match the precondition");
  }
}

/** Thrown by document functions before the entity is known; the store attaches `current`. */
export class TestFailedError extends Error {}

export class PatchConflictError extends Error {}

export class ConditionFailedError extends Error {
  constructor(readonly failed: ConditionFailure) {
    super(`condition ${failed.index} (${failed.op} at "${failed.path}") is false`);
  }
}

/** A document-level failure, bound to the entity it was applied to. */
export class EntityConflictError extends Error {
  constructor(
    readonly reason: TestFailedError | PatchConflictError | ConditionFailedError,
    readonly current: Entity | null,
  ) {
    super(reason.message, { cause: reason });
  }
}

export class IdempotencyKeyReusedError extends Error {}
