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
 * body. Four codes that callers routinely branch on have subclasses of their own
 * ({@link EntityNotFoundError}, {@link VersionMismatchError}, {@link ConditionFailedError},
 * {@link IdempotencyKeyReusedError}); {@link isProblem} narrows by any code.
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
   * The error for a problem body, as the subclass for its code when it has one.
   *
   * @example
   * const error = ProblemError.from(recordedProblem);
   * if (error instanceof ConditionFailedError) console.log(error.failed?.path);
   */
  static from(problem: Problem): ProblemError {
    switch (problem.code) {
      case "entity-not-found":
        return new EntityNotFoundError(problem);
      case "version-mismatch":
        return new VersionMismatchError(problem);
      case "condition-failed":
        return new ConditionFailedError(problem);
      case "idempotency-key-reused":
        return new IdempotencyKeyReusedError(problem);
      default:
        return new ProblemError(problem);
    }
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
export class VersionMismatchError extends ProblemError {
  override readonly name = "VersionMismatchError";

  get current(): Entity | null {
    return this.problem.current ?? null;
  }
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
export class ConditionFailedError extends ProblemError {
  override readonly name = "ConditionFailedError";

  get current(): Entity | null {
    return this.problem.current ?? null;
  }

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
