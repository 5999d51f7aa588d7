import { HttpError as ValidatorError } from "express-openapi-validator/dist/framework/types.js";
import { ConditionFailedError, InvalidDocumentError, TestFailedError } from "../documents/document-errors.js";
import { EntityConflictError, EntityNotFoundError, IdempotencyKeyReusedError, VersionMismatchError } from "../entities/errors.js";
import { InvalidCursorError } from "../entities/list-cursor.js";
import { ShardBusyError, StorageFullError } from "../storage/storage-errors.js";
import { ProblemError, type ProblemCode } from "./problems.js";

const RETRY_AFTER_SECONDS = "1";

/**
 * Maps every failure the layers below can raise to its problem. Unknown errors are returned
 * unchanged: the problem middleware answers them as `internal` and logs them.
 */
export function toProblem(error: unknown): unknown {
  if (error instanceof ProblemError) return error;
  if (error instanceof EntityNotFoundError) return new ProblemError("entity-not-found", error.message);
  if (error instanceof VersionMismatchError) {
    return new ProblemError("version-mismatch", error.message, { extras: { current: error.current } });
  }
  if (error instanceof EntityConflictError) {
    const { reason, current } = error;
    if (reason instanceof ConditionFailedError) {
      return new ProblemError("condition-failed", reason.message, { extras: { failed: reason.failed, current } });
    }
    const code = reason instanceof TestFailedError ? "test-failed" : "patch-conflict";
    return new ProblemError(code, reason.message, { extras: { current } });
  }
  if (error instanceof IdempotencyKeyReusedError) return new ProblemError("idempotency-key-reused", error.message);
  if (error instanceof InvalidDocumentError) return new ProblemError("invalid-body", error.message);
  if (error instanceof InvalidCursorError) return new ProblemError("invalid-cursor", error.message);
  if (error instanceof ShardBusyError) {
    return new ProblemError("unavailable", "the shard is busy; retry shortly", {
      headers: { "Retry-After": RETRY_AFTER_SECONDS },
      cause: error,
    });
  }
  if (error instanceof StorageFullError) {
    return new ProblemError("unavailable", "the store is out of disk space; nothing was written", {
      headers: { "Retry-After": RETRY_AFTER_SECONDS },
      cause: error,
    });
  }
  if (error instanceof ValidatorError) return fromValidatorError(error);
  return fromBodyParserError(error) ?? error;
}

function fromValidatorError(error: ValidatorError): ProblemError {
  const detail = error.errors.map((item) => `${item.path}: ${item.message}`).join("; ") || error.message;
  switch (error.status) {
    case 404:
      return new ProblemError("route-not-found", "no such route");
    case 405:
      return new ProblemError("method-not-allowed", detail, {
        headers: error.headers?.Allow ? { Allow: error.headers.Allow.toUpperCase() } : {},
      });
    case 413:
      return new ProblemError("payload-too-large", detail);
    case 415:
      return new ProblemError("unsupported-media-type", detail);
    default:
      return new ProblemError(requestPartCode(error.errors.map((item) => item.path)), detail);
  }
}

/** The validator names the part of the request it refused: `/params/id`, `/query/limit`, … */
function requestPartCode(paths: string[]): ProblemCode {
  const parts = paths.map((path) => path.replace(/^[./]/, "").split(/[./]/));
  if (parts.some(([part, name]) => part === "headers" && name === "idempotency-key")) return "invalid-idempotency-key";
  if (parts.some(([part]) => part === "params")) return "invalid-key";
  if (parts.some(([part]) => part === "query")) return "invalid-query";
  return "invalid-body";
}

/** body-parser marks its errors with a `type` (see its README, "Errors"). */
function fromBodyParserError(error: unknown): ProblemError | undefined {
  if (!(error instanceof Error) || !("type" in error)) return undefined;
  switch (error.type) {
    case "entity.parse.failed":
      return new ProblemError("invalid-body", `the body is not valid JSON: ${error.message}`);
    case "entity.too.large":
      return new ProblemError("payload-too-large", error.message);
    case "encoding.unsupported":
    case "charset.unsupported":
      return new ProblemError("unsupported-media-type", error.message);
    case "request.aborted":
    case "request.size.invalid":
    case "stream.encoding.set":
      return new ProblemError("invalid-body", error.message);
    default:
      return undefined;
  }
}
