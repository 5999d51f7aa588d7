/**
 * `apostate/client`: the typed SDK. Types come from `openapi.yaml` (client/generated), requests
 * go through openapi-fetch, and retries, idempotency keys and workflows are layered on top.
 *
 * @example
 * import { createClient, ConditionFailedError } from "apostate/client";
 * const db = createClient({ baseUrl: "http://127.0.0.1:8080" });
 * await db.ops("account", "alice", { do: [{ op: "inc", path: "/balance", value: 100 }], upsert: true });
 */
export {
  ApostateClient,
  createClient,
  type CallOptions,
  type ClientOptions,
  type Condition,
  type ConditionalOptions,
  type Entity,
  type EntityData,
  type EntityPage,
  type JsonPatch,
  type ListOptions,
  type ListPageOptions,
  type MergePatch,
  type ModifyOptions,
  type MutationOptions,
  type Operation,
  type OpsRequest,
  type PutOptions,
} from "./apostate-client.js";
export { Collection, type TypedEntity, type TypedEntityPage } from "./collection.js";
export {
  ConditionFailedError,
  EntityNotFoundError,
  IdempotencyKeyReusedError,
  InternalError,
  InvalidBodyError,
  InvalidCursorError,
  InvalidIdempotencyKeyError,
  InvalidKeyError,
  InvalidQueryError,
  isProblem,
  MethodNotAllowedError,
  PatchConflictError,
  PayloadTooLargeError,
  ProblemError,
  ProblemWithCurrentError,
  RouteNotFoundError,
  ShardNotFoundError,
  TestFailedError,
  UnauthorizedError,
  UnavailableError,
  UnsupportedMediaTypeError,
  VersionMismatchError,
  type Problem,
  type ProblemCode,
} from "./problem-error.js";
export { HttpError, NetworkError } from "./request-errors.js";
export { DEFAULT_RETRY, type RetryOptions } from "./retry.js";
export { type Topology } from "./topology-router.js";
export {
  WORKFLOW_TYPE,
  WorkflowDefinitionError,
  WorkflowError,
  type WorkflowOptions,
  type WorkflowResult,
  type WorkflowStep,
  type WorkflowStepResult,
} from "./workflow.js";
