import type { components } from "./generated/openapi.js";
import { ConditionFailedError, isProblemBody, ProblemError, type Problem } from "./problem-error.js";
import { RETRYABLE_STATUSES } from "./retry.js";
import { sha256Hex } from "./web-crypto.js";

type Entity = components["schemas"]["Entity"];
type OpsRequest = components["schemas"]["OpsRequest"];
type Operation = components["schemas"]["Operation"];

/**
 * The entity type that holds each workflow's progress, under the workflow's id. It is an
 * ordinary entity, so any process that can reach the store can resume a workflow.
 *
 * @example
 * const progress = await db.get(WORKFLOW_TYPE, "transfer-42"); // progress.data.status === "completed"
 */
export const WORKFLOW_TYPE = "apostate-workflow";

/** Step names become part of idempotency keys and must not contain the `/` that separates the parts. */
const STEP_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_KEY_LENGTH = 255;

/**
 * One step: a single-entity `ops` request, and optionally the `ops` request that undoes it.
 *
 * @example
 * const debit: WorkflowStep = {
 *   name: "debit", type: "account", id: "alice",
 *   ops: { if: [{ path: "/balance", op: "gte", value: 10 }], do: [{ op: "inc", path: "/balance", value: -10 }] },
 *   compensate: { do: [{ op: "inc", path: "/balance", value: 10 }] },
 * };
 */
export interface WorkflowStep {
  /** Unique within the workflow: 1–64 of `A-Z a-z 0-9 . _ -`. */
  name: string;
  type: string;
  id: string;
  ops: OpsRequest;
  /** Run (once) when a later step fails for good. */
  compensate?: OpsRequest;
}

/**
 * A completed step: the entity it changed and the version its change produced.
 *
 * @example
 * const { version } = (await db.workflow("transfer-42", steps)).steps[0];
 */
export interface WorkflowStepResult {
  name: string;
  type: string;
  id: string;
  version: number;
}

/**
 * What a completed workflow resolves to, the first time and every time after.
 *
 * @example
 * const result = await db.workflow("transfer-42", steps); // { id: "transfer-42", status: "completed", steps: [...] }
 */
export interface WorkflowResult {
  id: string;
  status: "completed";
  steps: WorkflowStepResult[];
}

/**
 * Options of a workflow run.
 *
 * @example
 * await db.workflow("transfer-42", steps, { signal: AbortSignal.timeout(10_000) });
 */
export interface WorkflowOptions {
  /** Aborts the run between or during requests; running the id again resumes it. */
  signal?: AbortSignal;
}

/**
 * A workflow step failed for good (e.g. 409 `condition-failed`); the steps completed before it
 * were compensated in reverse order. `cause` is the step's {@link ProblemError}.
 *
 * @example
 * try {
 *   await db.workflow("transfer-42", steps);
 * } catch (error) {
 *   if (error instanceof WorkflowError) console.log(error.failedStep, error.cause.code); // "debit" "condition-failed"
 * }
 */
export class WorkflowError extends Error {
  override readonly name = "WorkflowError";
  readonly status = "compensated";
  override readonly cause: ProblemError;

  constructor(
    readonly workflowId: string,
    readonly failedStep: string,
    cause: ProblemError,
  ) {
    super(`workflow ${workflowId}: step "${failedStep}" failed (${cause.code}); the steps before it were compensated`, {
      cause,
    });
    this.cause = cause;
  }
}

/**
 * The workflow id already belongs to a workflow with other steps. Running it would mix two
 * definitions' keys, so nothing is sent.
 *
 * @example
 * await db.workflow("transfer-42", otherSteps).catch((error: unknown) => {
 *   if (error instanceof WorkflowDefinitionError) console.log("pick a new id");
 * });
 */
export class WorkflowDefinitionError extends Error {
  override readonly name = "WorkflowDefinitionError";

  constructor(readonly workflowId: string) {
    super(`workflow ${workflowId} was started with different steps`);
  }
}

/**
 * The part of the client a workflow needs.
 *
 * @example
 * await runWorkflow(createClient({ baseUrl }), "transfer-42", steps, {});
 */
export interface WorkflowStore {
  ops(type: string, id: string, body: OpsRequest, options: { idempotencyKey?: string; signal?: AbortSignal }): Promise<Entity>;
}

type StepState = "pending" | "done" | "compensated";
type WorkflowStatus = "running" | "compensating" | "completed" | "compensated";

interface ProgressStep {
  name: string;
  type: string;
  id: string;
  state: StepState;
  version: number | null;
}

/** The data of the `apostate-workflow` entity. */
interface Progress {
  /** SHA-256 of the steps, so a re-run with other steps is refused instead of mixed in. */
  definition: string;
  status: WorkflowStatus;
  steps: ProgressStep[];
  failedStep: string | null;
  failure: Problem | null;
}

/**
 * The idempotency key of a step (`wf/<workflow id>/<step name>`) or of its compensation
 * (`…/compensate`). Neither ids nor step names may contain `/`, so two different steps can never
 * share a key. A key that would pass the server's 255-character limit is replaced by its hash.
 *
 * @example
 * await stepKey("transfer-42", "debit", "compensate"); // "wf/transfer-42/debit/compensate"
 */
async function stepKey(workflowId: string, stepName: string, role: "step" | "compensate"): Promise<string> {
  const key = ["wf", workflowId, stepName, ...(role === "compensate" ? ["compensate"] : [])].join("/");
  return key.length <= MAX_KEY_LENGTH ? key : `wf-sha256/${await sha256Hex(key)}`;
}

/**
 * The saga, as a state machine over the progress entity. Each pass sends at most one step (or
 * compensation) and then records it; every record is a conditional `ops` on the progress
 * entity, and a record that finds the state moved on (409) continues from the state it found.
 *
 * Crash windows, and why re-running is safe in each:
 * - a step applied but not recorded: it is still `pending`, so it is sent again with the same
 *   key and the server replays the recorded answer instead of applying it again;
 * - a step that failed for good but whose failure was not recorded: nothing was applied (failed
 *   requests commit nothing), so sending it again is a fresh attempt, not a repeat;
 * - a recorded failure: the status is `compensating`, so the failed step is never sent again,
 *   even if it would now succeed;
 * - a compensation applied but not recorded: sent again with its own key, replayed.
 * A step's key protects it for the server's idempotency retention (24 h by default), so a
 * workflow must be resumed within that window.
 *
 * @example
 * const result = await runWorkflow(db, "transfer-42", steps, {}); // what db.workflow() does
 */
export async function runWorkflow(
  store: WorkflowStore,
  workflowId: string,
  steps: readonly WorkflowStep[],
  options: WorkflowOptions,
): Promise<WorkflowResult> {
  validateSteps(steps);
  const definition = await definitionOf(steps);
  const signal = options.signal ? { signal: options.signal } : {};
  const record = async (body: OpsRequest): Promise<Progress> => {
    try {
      return progressOf(await store.ops(WORKFLOW_TYPE, workflowId, body, signal));
    } catch (error) {
      // Someone (another run of this id) got there first; carry on from the state they left.
      if (error instanceof ConditionFailedError && error.current) return progressOf(error.current);
      throw error;
    }
  };

  let progress = await record(beginRequest(definition, steps));
  if (progress.definition !== definition) throw new WorkflowDefinitionError(workflowId);

  for (;;) {
    switch (progress.status) {
      case "completed":
        return { id: workflowId, status: "completed", steps: progress.steps.map(stepResultOf) };
      case "compensated":
        throw workflowErrorOf(workflowId, progress);
      case "running": {
        const index = progress.steps.findIndex((step) => step.state === "pending");
        const step = steps[index];
        if (step === undefined) {
          progress = await record(transition("running", "completed"));
          break;
        }
        let entity: Entity;
        try {
          entity = await store.ops(step.type, step.id, step.ops, {
            idempotencyKey: await stepKey(workflowId, step.name, "step"),
            ...signal,
          });
        } catch (error) {
          // Only the step's own answer decides its fate; a failed progress write below must never
          // be mistaken for a failed step, or an applied step would be left out of compensation.
          if (!failedForGood(error)) throw error;
          progress = await record({
            if: [
              { path: "/status", op: "eq", value: "running" },
              { path: `/steps/${index}/state`, op: "eq", value: "pending" },
            ],
            do: [set("/status", "compensating"), set("/failedStep", step.name), set("/failure", error.problem)],
          });
          break;
        }
        progress = await record({
          if: [{ path: `/steps/${index}/state`, op: "eq", value: "pending" }],
          do: [set(`/steps/${index}/state`, "done"), set(`/steps/${index}/version`, entity.version)],
        });
        break;
      }
      case "compensating": {
        // The latest completed step that has something to undo; steps without a compensation stay `done`.
        const index = progress.steps.findLastIndex((recorded, i) => recorded.state === "done" && steps[i]?.compensate);
        const step = steps[index];
        if (step?.compensate === undefined) {
          progress = await record(transition("compensating", "compensated"));
          break;
        }
        await store.ops(step.type, step.id, step.compensate, {
          idempotencyKey: await stepKey(workflowId, step.name, "compensate"),
          ...signal,
        });
        progress = await record({
          if: [{ path: `/steps/${index}/state`, op: "eq", value: "done" }],
          do: [set(`/steps/${index}/state`, "compensated")],
        });
        break;
      }
    }
  }
}

/**
 * A step error that re-sending cannot change: a 4xx problem other than 401 (a token problem is
 * the operator's, and compensating would meet it too) and the retryable 408/429. Anything else
 * (no answer, 5xx) leaves the step's outcome open, so the run stops and a re-run resumes.
 */
function failedForGood(error: unknown): error is ProblemError {
  return (
    error instanceof ProblemError &&
    error.status >= 400 &&
    error.status < 500 &&
    error.status !== 401 &&
    !RETRYABLE_STATUSES.has(error.status)
  );
}

function validateSteps(steps: readonly WorkflowStep[]): void {
  if (steps.length === 0) throw new TypeError("a workflow needs at least one step");
  const names = new Set<string>();
  for (const step of steps) {
    if (!STEP_NAME.test(step.name)) throw new TypeError(`step name ${JSON.stringify(step.name)} must match ${STEP_NAME}`);
    if (names.has(step.name)) throw new TypeError(`step name ${JSON.stringify(step.name)} is used twice`);
    if (step.type === WORKFLOW_TYPE) throw new TypeError(`a step may not change the ${WORKFLOW_TYPE} entities`);
    names.add(step.name);
  }
}

function definitionOf(steps: readonly WorkflowStep[]): Promise<string> {
  const canonical = steps.map(({ name, type, id, ops, compensate }) => ({ name, type, id, ops, compensate: compensate ?? null }));
  return sha256Hex(JSON.stringify(canonical));
}

/** Creates the progress entity, or (409) answers with the one a previous run created. */
function beginRequest(definition: string, steps: readonly WorkflowStep[]): OpsRequest {
  const progress: Progress = {
    definition,
    status: "running",
    steps: steps.map(({ name, type, id }) => ({ name, type, id, state: "pending", version: null })),
    failedStep: null,
    failure: null,
  };
  return {
    if: [{ path: "/definition", op: "absent" }],
    do: Object.entries(progress).map(([member, value]) => set(`/${member}`, value)),
    upsert: true,
  };
}

function transition(from: WorkflowStatus, to: WorkflowStatus): OpsRequest {
  return { if: [{ path: "/status", op: "eq", value: from }], do: [set("/status", to)] };
}

function set(path: string, value: unknown): Operation {
  return { op: "set", path, value };
}

function stepResultOf(step: ProgressStep): WorkflowStepResult {
  if (step.version === null) throw new Error(`step ${step.name} is recorded as completed without a version`);
  return { name: step.name, type: step.type, id: step.id, version: step.version };
}

function workflowErrorOf(workflowId: string, progress: Progress): WorkflowError {
  if (progress.failedStep === null || progress.failure === null) {
    throw new Error(`workflow ${workflowId} is compensated without a recorded failure`);
  }
  return new WorkflowError(workflowId, progress.failedStep, ProblemError.from(progress.failure));
}

const STEP_STATES: readonly unknown[] = ["pending", "done", "compensated"] satisfies StepState[];
const STATUSES: readonly unknown[] = ["running", "compensating", "completed", "compensated"] satisfies WorkflowStatus[];

/** The progress in a workflow entity, checked: the entity is plain data anyone could have written. */
function progressOf(entity: Entity): Progress {
  const { definition, status, steps, failedStep, failure } = entity.data;
  const malformed = () => new Error(`${WORKFLOW_TYPE}/${entity.id} does not hold a workflow's progress`);
  if (typeof definition !== "string" || !isStatus(status)) throw malformed();
  if (!Array.isArray(steps) || !steps.every(isProgressStep)) throw malformed();
  if (failedStep !== null && typeof failedStep !== "string") throw malformed();
  if (failure !== null && !isProblemBody(failure)) throw malformed();
  return { definition, status, steps, failedStep, failure };
}

function isStatus(value: unknown): value is WorkflowStatus {
  return STATUSES.includes(value);
}

function isProgressStep(value: unknown): value is ProgressStep {
  if (typeof value !== "object" || value === null) return false;
  const { name, type, id, state, version } = value as Record<string, unknown>;
  return (
    typeof name === "string" &&
    typeof type === "string" &&
    typeof id === "string" &&
    STEP_STATES.includes(state) &&
    (version === null || typeof version === "number")
  );
}
