import type { ConditionFailedError, PatchConflictError, TestFailedError } from "../documents/document-errors.js";
import type { Entity } from "./entity.js";

/*
 * The entity store's failures. They know nothing about HTTP: server/http/problem-mapper.ts turns
 * each into its problem code. Errors about an existing entity carry it as it is now (`current`,
 * null when absent) so the caller can decide without another read.
 */

export class EntityNotFoundError extends Error {}

export class VersionMismatchError extends Error {
  constructor(readonly current: Entity | null) {
    super("the entity's version does not match the precondition");
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
