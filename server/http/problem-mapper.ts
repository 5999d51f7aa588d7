import { InvalidKeyCursorError } from "../admin/key-cursor.js";
import { UnknownShardError } from "../admin/shard-admin.js";
import { ConditionFailedError, InvalidDocumentError, TestFailedError } from "../documents/document-errors.js";
import { EntityConflictError, EntityNotFoundError, IdempotencyKeyReusedError, VersionMismatchError } from "../entities/errors.js";
import { InvalidCursorError } from "../entities/list-cursor.js";
import {
  InvalidTopologyRequestError,
  ShardInMotionError,
  TopologyUnavailableError,
  TransferError,
  UnknownMoveError,
} from "../cluster/cluster-errors.js";
import { ShardBusyError, ShardFrozenError, ShardNotHereError, StorageFullError } from "../storage/storage-errors.js";
import { ProblemError } from "./problems.js";

const RETRY_AFTER_SECONDS = "1";

/** A condition that passes: 503 with a hint of when to retry. */
function unavailable(detail: string, cause: unknown): ProblemError {
  return new ProblemError("unavailable", detail, { headers: { "Retry-After": RETRY_AFTER_SECONDS }, cause });
}

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
  if (error instanceof InvalidCursorError || error instanceof InvalidKeyCursorError) {
    return new ProblemError("invalid-cursor", error.message);
  }
  if (error instanceof UnknownShardError) return new ProblemError("shard-not-found", error.message);
  if (error instanceof ShardBusyError) return unavailable("the shard is busy; retry shortly", error);
  // The fence says why: frozen while it moves, or no longer this node's.
  if (error instanceof ShardFrozenError) return unavailable(error.message, error);
  if (error instanceof ShardNotHereError) {
    return unavailable("the shard that holds this key is not on this node right now; retry shortly", error);
  }
  if (error instanceof InvalidTopologyRequestError) return new ProblemError("invalid-body", error.message);
  if (error instanceof UnknownMoveError) return new ProblemError("route-not-found", error.message);
  if (error instanceof TopologyUnavailableError || error instanceof ShardInMotionError || error instanceof TransferError) {
    return unavailable(error.message, error);
  }
  if (error instanceof StorageFullError) {
    return unavailable("the store is out of disk space; nothing was written", error);
  }
  return error;
}
