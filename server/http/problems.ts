import type { components } from "../../client/generated/openapi.js";

export type ProblemCode = components["schemas"]["ProblemCode"];
export type ProblemBody = components["schemas"]["Problem"];

/** The catalogue: every problem code with its status and title. openapi.yaml documents each. */
export const PROBLEMS = {
  "entity-not-found": { status: 404, title: "Entity not found" },
  "version-mismatch": { status: 412, title: "Version mismatch" },
  "condition-failed": { status: 409, title: "Condition failed" },
  "test-failed": { status: 409, title: "JSON Patch test failed" },
  "patch-conflict": { status: 409, title: "Patch cannot be applied" },
  "idempotency-key-reused": { status: 422, title: "Idempotency key reused" },
  "invalid-idempotency-key": { status: 400, title: "Invalid idempotency key" },
  "invalid-key": { status: 400, title: "Invalid entity key" },
  "invalid-body": { status: 400, title: "Invalid body" },
  "invalid-cursor": { status: 400, title: "Invalid cursor" },
  "invalid-query": { status: 400, title: "Invalid query" },
  "unsupported-media-type": { status: 415, title: "Unsupported media type" },
  "payload-too-large": { status: 413, title: "Payload too large" },
  "route-not-found": { status: 404, title: "Route not found" },
  "shard-not-found": { status: 404, title: "Shard not found" },
  "method-not-allowed": { status: 405, title: "Method not allowed" },
  unauthorized: { status: 401, title: "Unauthorized" },
  // 502 only when a forwarded request's answer was lost midway: its outcome is unknown.
  unavailable: { status: 503, title: "Unavailable", alsoStatus: 502 },
  internal: { status: 500, title: "Internal error" },
} as const satisfies Record<ProblemCode, { status: number; title: string; alsoStatus?: number }>;

/** Members some problems carry besides the standard ones (`current`, `failed`). */
export type ProblemExtras = Pick<ProblemBody, "current" | "failed">;

/**
 * An error that is answered as an RFC 9457 problem. Only these reach a client with their
 * detail; anything else becomes `internal`, with the cause in the log.
 *
 * @example
 * throw new ProblemError("invalid-cursor", "the cursor belongs to another type")
 */
export class ProblemError extends Error {
  readonly status: number;

  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    readonly options: { extras?: ProblemExtras; headers?: Record<string, string>; cause?: unknown; status?: 502 } = {},
  ) {
    super(detail, { cause: options.cause });
    this.status = options.status ?? PROBLEMS[code].status;
  }

  toBody(instance: string): ProblemBody {
    return {
      type: `urn:apostate:problem:${this.code}`,
      title: PROBLEMS[this.code].title,
      status: this.status,
      detail: this.detail,
      code: this.code,
      instance,
      ...this.options.extras,
    };
  }
}
