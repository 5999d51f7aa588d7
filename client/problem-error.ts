import type { components } from "./generated/openapi.js";

/**
 * An RFC 9457 problem body as the server sends it.
 *
 * @example
 * const problem: Problem = error.problem; // { type, title, status, detail, code, current?, failed? }
 */
export type Problem = components["schemas"]["Problem"];
/**
 * Every stable problem `code` the server uses.
 *
 * @example
 * const final: ProblemCode[] = ["condition-failed", "entity-not-found"];
 */
export type ProblemCode = components["schemas"]["ProblemCode"];
type Entity = components["schemas"]["Entity"];
type ConditionFailure = components["schemas"]["ConditionFailure"];

/**
 * An error response from apostate: its HTTP `status`, its stable `code` and the whole problem
 * body. Every code has a subclass of its own (`EntityNotFoundError` for `entity-not-found`, …,
 * `InternalError` for `internal`), so a caller can branch with `instanceof`; those whose problem
 * carries the entity as it is now extend {@link ProblemWithCurrentError}. {@link isProblem}
 * narrows by code as well.
 *
 * @example
 * try {
 *   await db.get("account", "alice");
 * } catch (error) {
 *   if (error instanceof EntityNotFoundError) return null;
 *   if (error instanceof ProblemError) console.error(error.status, error.code, error.problem.detail);
 *   throw error;
 * }
 */
export class ProblemError extends Error {
  override readonly name: string = "ProblemError";
  readonly status: number;
  readonly code: ProblemCode;

  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title);
    this.status = problem.status;
    this.code = problem.code;
  }

  /**
   * The error for a problem body, as the subclass for its code (a code this client does not
   * know, from a newer server, gives a plain ProblemError).
   *
   * @example
   * const error = ProblemError.from(recordedProblem);
   * if (error instanceof ConditionFailedError) console.log(error.failed?.path);
   */
  static from(problem: Problem): ProblemError {
    const ErrorClass: ProblemErrorClass = Object.hasOwn(ERROR_CLASSES, problem.code) ? ERROR_CLASSES[problem.code] : ProblemError;
    return new ErrorClass(problem);
  }
}

/**
 * A problem that carries the entity as it is now, so no extra read is needed to decide what to
 * do: `current` is `null` when the entity does not exist.
 *
 * @example
 * if (error instanceof ProblemWithCurrentError) console.log("now at version", error.current?.version);
 */
export abstract class ProblemWithCurrentError extends ProblemError {
  get current(): Entity | null {
    return this.problem.current ?? null;
  }
}

/**
 * 404 `entity-not-found`: no entity has this key.
 *
 * @example
 * const account = await db.get("account", "alice").catch((error: unknown) => {
 *   if (error instanceof EntityNotFoundError) return null;
 *   throw error;
 * });
 */
export class EntityNotFoundError extends ProblemError {
  override readonly name = "EntityNotFoundError";
}

/**
 * 412 `version-mismatch`: `If-Match` named another version, or `If-None-Match: *` found the
 * entity. `current` is the entity as it is now (`null` when absent), so no extra read is needed.
 *
 * @example
 * try {
 *   await db.put("account", "alice", next, { ifMatch: 3 });
 * } catch (error) {
 *   if (error instanceof VersionMismatchError) console.log("now at", error.current?.version);
 * }
 */
export class VersionMismatchError extends ProblemWithCurrentError {
  override readonly name = "VersionMismatchError";
}

/**
 * 409 `condition-failed`: an `ops` condition was false and nothing changed. `failed` names the
 * condition; `current` is the entity the conditions were checked against.
 *
 * @example
 * try {
 *   await db.ops("account", "alice", { if: [{ path: "/balance", op: "gte", value: 10 }], do: [] });
 * } catch (error) {
 *   if (error instanceof ConditionFailedError) console.log(error.failed?.path, error.current?.data);
 * }
 */
export class ConditionFailedError extends ProblemWithCurrentError {
  override readonly name = "ConditionFailedError";

  get failed(): ConditionFailure | undefined {
    return this.problem.failed;
  }
}

/**
 * 422 `idempotency-key-reused`: the key was already used on this entity for a different request
 * (method, path, preconditions or body). Nothing was applied.
 *
 * @example
 * await db.put("doc", "a", { v: 2 }, { idempotencyKey: "k1" }).catch((error: unknown) => {
 *   if (error instanceof IdempotencyKeyReusedError) console.log("k1 already meant something else");
 * });
 */
export class IdempotencyKeyReusedError extends ProblemError {
  override readonly name = "IdempotencyKeyReusedError";
}

/** 409 `test-failed`: a JSON Patch `test` operation failed, so nothing changed; `current` is the entity it tested. */
export class TestFailedError extends ProblemWithCurrentError {
  override readonly name = "TestFailedError";
}

/**
 * 409 `patch-conflict`: a JSON Patch or `ops` operation cannot apply to the entity as it is (an
 * `inc` of a non-number, a path through a scalar, …), so nothing changed; `current` is the entity.
 */
export class PatchConflictError extends ProblemWithCurrentError {
  override readonly name = "PatchConflictError";
}

/** 400 `invalid-idempotency-key`: the `Idempotency-Key` is empty, too long or not printable ASCII. */
export class InvalidIdempotencyKeyError extends ProblemError {
  override readonly name = "InvalidIdempotencyKeyError";
}

/** 400 `invalid-key`: the `type` or `id` is outside the allowed form. */
export class InvalidKeyError extends ProblemError {
  override readonly name = "InvalidKeyError";
}

/** 400 `invalid-body`: no body, malformed JSON, or a document the operation cannot take (`detail` says which). */
export class InvalidBodyError extends ProblemError {
  override readonly name = "InvalidBodyError";
}

/** 400 `invalid-cursor`: a list cursor that was forged, damaged or made for another list. */
export class InvalidCursorError extends ProblemError {
  override readonly name = "InvalidCursorError";
}

/** 400 `invalid-query`: a bad or undeclared query parameter (`detail` names it). */
export class InvalidQueryError extends ProblemError {
  override readonly name = "InvalidQueryError";
}

/** 415 `unsupported-media-type`: a body of a `Content-Type` the route does not take, or a body where it takes none. */
export class UnsupportedMediaTypeError extends ProblemError {
  override readonly name = "UnsupportedMediaTypeError";
}

/** 413 `payload-too-large`: the body is over the server's limit (`--body-limit`). */
export class PayloadTooLargeError extends ProblemError {
  override readonly name = "PayloadTooLargeError";
}

/** 404 `route-not-found`: no such route (a wrong `baseUrl` often). */
export class RouteNotFoundError extends ProblemError {
  override readonly name = "RouteNotFoundError";
}

/** 404 `shard-not-found`: an admin request named a shard the store does not have. */
export class ShardNotFoundError extends ProblemError {
  override readonly name = "ShardNotFoundError";
}

/** 405 `method-not-allowed`: the route exists, the method does not. */
export class MethodNotAllowedError extends ProblemError {
  override readonly name = "MethodNotAllowedError";
}

/** 401 `unauthorized`: the token is missing or wrong. */
export class UnauthorizedError extends ProblemError {
  override readonly name = "UnauthorizedError";
}

/**
 * `unavailable` (503, or 502 from a cluster node whose forward lost the owner's answer): the
 * server, a shard or its owner stayed unavailable through every retry the client's `retry`
 * options allowed. A write may have been applied all the same (a lost answer, or a replicated
 * write that waited too long for its followers): repeat it with the same `idempotencyKey` to
 * settle it.
 */
export class UnavailableError extends ProblemError {
  override readonly name = "UnavailableError";
}

/** 500 `internal`: the server failed in a way it does not explain; its log has the details. */
export class InternalError extends ProblemError {
  override readonly name = "InternalError";
}

type ProblemErrorClass = new (problem: Problem) => ProblemError;

/** The class of every code: a code added to `openapi.yaml` without one here does not compile. */
const ERROR_CLASSES: { readonly [C in ProblemCode]: ProblemErrorClass } = {
  "entity-not-found": EntityNotFoundError,
  "version-mismatch": VersionMismatchError,
  "condition-failed": ConditionFailedError,
  "test-failed": TestFailedError,
  "patch-conflict": PatchConflictError,
  "idempotency-key-reused": IdempotencyKeyReusedError,
  "invalid-idempotency-key": InvalidIdempotencyKeyError,
  "invalid-key": InvalidKeyError,
  "invalid-body": InvalidBodyError,
  "invalid-cursor": InvalidCursorError,
  "invalid-query": InvalidQueryError,
  "unsupported-media-type": UnsupportedMediaTypeError,
  "payload-too-large": PayloadTooLargeError,
  "route-not-found": RouteNotFoundError,
  "shard-not-found": ShardNotFoundError,
  "method-not-allowed": MethodNotAllowedError,
  unauthorized: UnauthorizedError,
  unavailable: UnavailableError,
  internal: InternalError,
};

/**
 * Whether `error` is a {@link ProblemError} with the given code; narrows `error` when it is.
 *
 * @example
 * if (isProblem(error, "patch-conflict")) console.log(error.problem.current);
 */
export function isProblem<C extends ProblemCode>(error: unknown, code: C): error is ProblemError & { code: C } {
  return error instanceof ProblemError && error.code === code;
}

/**
 * Whether a parsed response body has the shape of a problem. Bodies that come from something
 * other than apostate (a proxy's HTML error page) do not, and become an `HttpError`.
 *
 * @example
 * isProblemBody({ type: "urn:apostate:problem:internal", title: "Internal error", status: 500, code: "internal" }); // true
 */
export function isProblemBody(body: unknown): body is Problem {
  if (typeof body !== "object" || body === null) return false;
  const { code, status, title, type } = body as Record<string, unknown>;
  return typeof code === "string" && typeof status === "number" && typeof title === "string" && typeof type === "string";
}
