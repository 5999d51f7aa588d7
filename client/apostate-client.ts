import createFetchClient, { type Client } from "openapi-fetch";
import type { components, operations, paths } from "./generated/openapi.js";
import { isProblemBody, ProblemError, VersionMismatchError } from "./problem-error.js";
import { HttpError, NetworkError } from "./request-errors.js";
import { randomUuid } from "./web-crypto.js";
import { DEFAULT_RETRY, retryDelay, type AttemptOutcome, type RetryOptions } from "./retry.js";
import { Collection } from "./collection.js";
import { TopologyRouter, type EntityKey, type Topology } from "./topology-router.js";
import { runWorkflow, type WorkflowOptions, type WorkflowResult, type WorkflowStep } from "./workflow.js";

/**
 * An entity: `{type, id, version, data, createdAt, updatedAt}`.
 *
 * @example
 * const alice: Entity = await db.get("account", "alice");
 */
export type Entity = components["schemas"]["Entity"];
/**
 * An entity's data: any JSON object.
 *
 * @example
 * const data: EntityData = { balance: 100, tags: ["vip"] };
 */
export type EntityData = components["schemas"]["EntityData"];
/**
 * An RFC 7396 merge patch.
 *
 * @example
 * const patch: MergePatch = { email: null, nickname: "al" }; // remove email, set nickname
 */
export type MergePatch = components["schemas"]["MergePatch"];
/**
 * An RFC 6902 JSON Patch.
 *
 * @example
 * const patch: JsonPatch = [{ op: "test", path: "/balance", value: 100 }, { op: "replace", path: "/balance", value: 90 }];
 */
export type JsonPatch = components["schemas"]["JsonPatch"];
/**
 * The body of an atomic conditional update: `{if, do, upsert}`.
 *
 * @example
 * const debit: OpsRequest = { if: [{ path: "/balance", op: "gte", value: 10 }], do: [{ op: "inc", path: "/balance", value: -10 }] };
 */
export type OpsRequest = components["schemas"]["OpsRequest"];
/**
 * One `ops` condition.
 *
 * @example
 * const enough: Condition = { path: "/balance", op: "gte", value: 10 };
 */
export type Condition = components["schemas"]["Condition"];
/**
 * One `ops` operation.
 *
 * @example
 * const debit: Operation = { op: "inc", path: "/balance", value: -10 };
 */
export type Operation = components["schemas"]["Operation"];

type PutHeaders = NonNullable<operations["putEntity"]["parameters"]["header"]>;

/** Per-attempt timeout unless {@link ClientOptions.timeoutMs} says otherwise. */
const DEFAULT_TIMEOUT_MS = 10_000;
/** How many `If-Match` conflicts {@link ApostateClient.modify} sits out before giving up. */
const DEFAULT_MODIFY_ATTEMPTS = 10;

/**
 * What {@link createClient} takes.
 *
 * @example
 * const options: ClientOptions = { baseUrl: "http://127.0.0.1:8080", token: "s3cret", timeoutMs: 2_000, retry: { maxAttempts: 8 } };
 */
export interface ClientOptions {
  /** The server's origin, e.g. `http://127.0.0.1:8080` (no `/v1`). */
  baseUrl: string;
  /** The `/v1` bearer token, when the server has one. */
  token?: string;
  /** Overrides of {@link DEFAULT_RETRY}. */
  retry?: Partial<RetryOptions>;
  /** Each attempt is abandoned (and counts as a retryable timeout) after this long. Default 10 000. */
  timeoutMs?: number;
  /** The `fetch` to send requests with (tests inject one); default `globalThis.fetch`. */
  fetch?: (request: Request) => Promise<Response>;
  /**
   * Where requests go. `"direct"` (the default): each single-entity request (and so each
   * `modify` and workflow step) goes straight to the cluster node that owns its key, by the map
   * `GET /v1/topology` answers, loaded at the first such request and reloaded when an answer
   * shows it is stale; lists, and everything while there is no map or the owner does not
   * answer, go to `baseUrl`, which forwards. A server that runs on its own answers with map
   * version 0, and everything goes to `baseUrl`. `"base"`: everything goes to `baseUrl`, and no
   * map is loaded.
   */
  routing?: "direct" | "base";
}

/**
 * Options every call takes.
 *
 * @example
 * await db.get("account", "alice", { signal: AbortSignal.timeout(1_000), retry: { maxAttempts: 1 } });
 */
export interface CallOptions {
  /** Aborts the call, its retries and its waits; the call rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Overrides of the client's retry policy for this call only, e.g. `{ maxAttempts: 1 }` to fail fast. */
  retry?: Partial<RetryOptions>;
}

/**
 * Options every mutation takes.
 *
 * @example
 * await db.ops("account", "alice", body, { idempotencyKey: `order-${orderId}-debit` });
 */
export interface MutationOptions extends CallOptions {
  /**
   * Sent as `Idempotency-Key` on every attempt of this call. Default: a new random UUID per
   * call. Pass your own to make a call you repeat later (e.g. after a crash) take effect once.
   */
  idempotencyKey?: string;
}

/**
 * Options of {@link ApostateClient.patch}, {@link ApostateClient.jsonPatch} and {@link ApostateClient.delete}.
 *
 * @example
 * await db.delete("account", "alice", { ifMatch: 3 });
 */
export interface ConditionalOptions extends MutationOptions {
  /** Only if the entity is at this version (`If-Match: "<version>"`); else 412 `version-mismatch`. */
  ifMatch?: number;
}

/**
 * Options of {@link ApostateClient.put}.
 *
 * @example
 * await db.put("account", "alice", { balance: 0 }, { ifNoneMatch: "*", idempotencyKey: "open-alice" });
 */
export interface PutOptions extends ConditionalOptions {
  /** `"*"`: create only; 412 `version-mismatch` when the entity exists. */
  ifNoneMatch?: PutHeaders["If-None-Match"];
}

/**
 * Options of {@link ApostateClient.list}.
 *
 * @example
 * for await (const account of db.list("account", { prefix: "eu-", pageSize: 1000 })) console.log(account.id);
 */
export interface ListOptions extends CallOptions {
  /** Only ids that start with this. */
  prefix?: string;
  /** Entities fetched per request (1–1000; the server's default is 100). */
  pageSize?: number;
}

/**
 * Options of {@link ApostateClient.listPage}.
 *
 * @example
 * const page = await db.listPage("account", { prefix: "eu-", limit: 50, cursor: previous.nextCursor ?? undefined });
 */
export interface ListPageOptions extends CallOptions {
  /** Only ids that start with this. */
  prefix?: string;
  /** Entities in the page (1–1000; the server's default is 100). */
  limit?: number;
  /** Where the page starts: the `nextCursor` of the page before; absent for the first page. */
  cursor?: string;
}

/**
 * One page of a listing: `{items, nextCursor}`, `nextCursor` being `null` after the last page.
 *
 * @example
 * const { items, nextCursor }: EntityPage = await db.listPage("account", { limit: 10 });
 */
export type EntityPage = components["schemas"]["EntityPage"];

/**
 * Options of {@link ApostateClient.modify}.
 *
 * @example
 * await db.modify("counter", "hits", (data) => ({ n: Number(data.n) + 1 }), { maxAttempts: 50 });
 */
export interface ModifyOptions extends CallOptions {
  /** Writes tried before the last `version-mismatch` is thrown. Default 10. */
  maxAttempts?: number;
}

type ApiResult = { data?: unknown; error?: unknown; response: Response };

/**
 * The typed apostate client. Every request goes through openapi-fetch with types generated
 * from `openapi.yaml`, and is retried by the policy in `retry.ts`; every mutation carries one
 * `Idempotency-Key` for all its attempts, so a retry never applies it twice.
 *
 * @example
 * const db = createClient({ baseUrl: "http://127.0.0.1:8080" });
 * await db.put("account", "alice", { balance: 100 });
 * const alice = await db.get("account", "alice"); // alice.version === 1
 */
export class ApostateClient {
  private readonly api: Client<paths>;
  private readonly retry: RetryOptions;
  private readonly timeoutMs: number;
  private readonly router: TopologyRouter;

  constructor(options: ClientOptions) {
    // A bad origin would otherwise surface as a retried "network error" on the first call.
    const origin = new URL(options.baseUrl);
    const routing = options.routing ?? "direct";
    if (routing !== "direct" && routing !== "base") {
      throw new TypeError(`routing must be "direct" or "base", not ${JSON.stringify(routing)}`);
    }
    this.api = createFetchClient<paths>({
      baseUrl: origin.href,
      ...(options.fetch && { fetch: options.fetch }),
      ...(options.token !== undefined && { headers: { Authorization: `Bearer ${options.token}` } }),
    });
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.router = new TopologyRouter(origin.href, routing === "direct", () => this.fetchTopology());
  }

  /**
   * Reads one entity.
   *
   * @throws {EntityNotFoundError} when it does not exist.
   * @example
   * const { version, data } = await db.get("account", "alice");
   */
  async get(type: string, id: string, options: CallOptions = {}): Promise<Entity> {
    const result = await this.send(
      `GET ${type}/${id}`,
      { type, id },
      (init) => this.api.GET("/v1/entities/{type}/{id}", { params: { path: { type, id } }, ...init }),
      options,
    );
    return dataOf(result);
  }

  /**
   * Creates or replaces an entity; resolves to it as stored.
   *
   * @throws {VersionMismatchError} when `ifMatch` or `ifNoneMatch` does not hold.
   * @example
   * await db.put("account", "alice", { balance: 100 }, { ifNoneMatch: "*" });
   */
  async put(type: string, id: string, data: EntityData, options: PutOptions = {}): Promise<Entity> {
    const key = options.idempotencyKey ?? randomUuid();
    const header = {
      "Idempotency-Key": key,
      "If-Match": entityTag(options.ifMatch),
      "If-None-Match": options.ifNoneMatch,
    };
    const result = await this.send(
      `PUT ${type}/${id}`,
      { type, id },
      (init) => this.api.PUT("/v1/entities/{type}/{id}", { params: { path: { type, id }, header }, body: data, ...init }),
      options,
    );
    return dataOf(result);
  }

  /**
   * Applies an RFC 7396 merge patch (`null` removes a member).
   *
   * @throws {EntityNotFoundError} when it does not exist; {@link VersionMismatchError} on `ifMatch`.
   * @example
   * await db.patch("account", "alice", { nickname: "al", email: null });
   */
  async patch(type: string, id: string, mergePatch: MergePatch, options: ConditionalOptions = {}): Promise<Entity> {
    return this.sendPatch(type, id, mergePatch, "application/merge-patch+json", options);
  }

  /**
   * Applies an RFC 6902 JSON Patch, all or nothing.
   *
   * @throws a {@link ProblemError} with code `test-failed` or `patch-conflict` when it cannot apply.
   * @example
   * await db.jsonPatch("account", "alice", [{ op: "test", path: "/balance", value: 100 }, { op: "replace", path: "/balance", value: 90 }]);
   */
  async jsonPatch(type: string, id: string, operations: JsonPatch, options: ConditionalOptions = {}): Promise<Entity> {
    return this.sendPatch(type, id, operations, "application/json-patch+json", options);
  }

  /**
   * An atomic conditional update: every condition is checked and every operation applied in
   * one transaction, or nothing changes.
   *
   * @throws {ConditionFailedError} when a condition is false; {@link EntityNotFoundError} without `upsert`.
   * @example
   * await db.ops("account", "alice", {
   *   if: [{ path: "/balance", op: "gte", value: 10 }],
   *   do: [{ op: "inc", path: "/balance", value: -10 }],
   * });
   */
  async ops(type: string, id: string, body: OpsRequest, options: MutationOptions = {}): Promise<Entity> {
    const header = { "Idempotency-Key": options.idempotencyKey ?? randomUuid() };
    const result = await this.send(
      `POST ${type}/${id}/ops`,
      { type, id },
      (init) => this.api.POST("/v1/entities/{type}/{id}/ops", { params: { path: { type, id }, header }, body, ...init }),
      options,
    );
    return dataOf(result);
  }

  /**
   * Deletes an entity. Its version is kept, so a re-created entity never repeats one.
   *
   * @throws {EntityNotFoundError} when it does not exist; {@link VersionMismatchError} on `ifMatch`.
   * @example
   * await db.delete("account", "alice", { ifMatch: 7 });
   */
  async delete(type: string, id: string, options: ConditionalOptions = {}): Promise<void> {
    const header = { "Idempotency-Key": options.idempotencyKey ?? randomUuid(), "If-Match": entityTag(options.ifMatch) };
    await this.send(
      `DELETE ${type}/${id}`,
      { type, id },
      (init) => this.api.DELETE("/v1/entities/{type}/{id}", { params: { path: { type, id }, header }, ...init }),
      options,
    );
  }

  /**
   * Every entity of a type in id order, fetched a page at a time as the loop asks for more.
   *
   * @example
   * for await (const account of db.list("account", { prefix: "eu-", pageSize: 500 })) {
   *   console.log(account.id, account.data);
   * }
   */
  async *list(type: string, options: ListOptions = {}): AsyncGenerator<Entity, void, undefined> {
    let cursor: string | undefined;
    do {
      const page = await this.listPage(type, { ...options, limit: options.pageSize, cursor });
      yield* page.items;
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
  }

  /**
   * One page of the entities of a type in id order, for screens that page on demand: pass
   * `nextCursor` back as `cursor` for the next page; it is `null` after the last one.
   *
   * @throws a {@link ProblemError} with code `invalid-cursor` for a cursor of another listing.
   * @example
   * const first = await db.listPage("account", { prefix: "eu-", limit: 50 });
   * const second = first.nextCursor ? await db.listPage("account", { prefix: "eu-", limit: 50, cursor: first.nextCursor }) : null;
   */
  async listPage(type: string, options: ListPageOptions = {}): Promise<EntityPage> {
    const query = { limit: options.limit, prefix: options.prefix, cursor: options.cursor };
    // The base node asks every node for its part of the listing, so a list is never routed.
    const result = await this.send(
      `GET ${type}`,
      undefined,
      (init) => this.api.GET("/v1/entities/{type}", { params: { path: { type }, query }, ...init }),
      options,
    );
    return dataOf(result);
  }

  /**
   * The same methods for one type, with its data typed as `T`. The server does not know `T`:
   * entities are typed as `T`, not checked, so keep one type's writers in agreement.
   *
   * @example
   * interface Account { balance: number; owner: string }
   * const accounts = db.collection<Account>("account");
   * await accounts.put("alice", { balance: 100, owner: "Alice" });
   * const { data } = await accounts.get("alice"); // data.balance: number
   */
  collection<T extends object>(type: string): Collection<T> {
    return new Collection<T>(this, type);
  }

  /**
   * The cluster map this client routes by, for dashboards: `undefined` until the first
   * single-entity request has loaded it, while it cannot be loaded, and with `routing: "base"`.
   *
   * @example
   * await db.get("account", "alice");
   * console.log(db.topology()?.version); // 0 for a server that runs on its own
   */
  topology(): Topology | undefined {
    return this.router.topology();
  }

  /**
   * Optimistic read-modify-write: reads the entity, computes its next data with `fn`, and
   * writes it with `If-Match`; when another writer got there first (412) it starts over from
   * the entity that won, up to `maxAttempts` writes. `fn` gets a copy it may change, and runs
   * once per conflict, never again for a write whose answer was lost: that one is settled by
   * the write's idempotency key.
   *
   * @throws {VersionMismatchError} when every attempt met a conflict; {@link EntityNotFoundError} when absent.
   * @example
   * await db.modify("counter", "visits", (data) => ({ ...data, n: Number(data.n ?? 0) + 1 }));
   */
  async modify(
    type: string,
    id: string,
    fn: (data: EntityData, entity: Entity) => EntityData | Promise<EntityData>,
    options: ModifyOptions = {},
  ): Promise<Entity> {
    const maxAttempts = options.maxAttempts ?? DEFAULT_MODIFY_ATTEMPTS;
    let entity = await this.get(type, id, options);
    for (let attempt = 1; ; attempt += 1) {
      const next = await fn(structuredClone(entity.data), entity);
      try {
        return await this.put(type, id, next, { ifMatch: entity.version, signal: options.signal, retry: options.retry });
      } catch (error) {
        if (!(error instanceof VersionMismatchError) || attempt >= maxAttempts) throw error;
        // The 412 carries the winner, so no extra read; `null` means it was deleted meanwhile.
        entity = error.current ?? (await this.get(type, id, options));
      }
    }
  }

  /**
   * Runs a workflow: single-entity steps in order, each sent with an idempotency key derived
   * from the workflow id and the step's name, with the completed steps' compensations run in
   * reverse when a step fails for good. Progress is kept in the entity
   * `apostate-workflow/<workflowId>`, so running the same id again (in any process, after a
   * crash) finishes it without applying any step twice, and a finished workflow returns (or
   * rejects with) its recorded outcome without sending any step.
   *
   * @throws {WorkflowError} when a step failed for good and the completed steps were compensated.
   * @example
   * await db.workflow("transfer-42", [
   *   { name: "debit", type: "account", id: "alice",
   *     ops: { if: [{ path: "/balance", op: "gte", value: 10 }], do: [{ op: "inc", path: "/balance", value: -10 }] },
   *     compensate: { do: [{ op: "inc", path: "/balance", value: 10 }] } },
   *   { name: "credit", type: "account", id: "bob", ops: { do: [{ op: "inc", path: "/balance", value: 10 }] } },
   * ]);
   */
  async workflow(workflowId: string, steps: readonly WorkflowStep[], options: WorkflowOptions = {}): Promise<WorkflowResult> {
    return runWorkflow(this, workflowId, steps, options);
  }

  private async sendPatch(
    type: string,
    id: string,
    body: MergePatch | JsonPatch,
    contentType: "application/merge-patch+json" | "application/json-patch+json",
    options: ConditionalOptions,
  ): Promise<Entity> {
    const header = { "Idempotency-Key": options.idempotencyKey ?? randomUuid(), "If-Match": entityTag(options.ifMatch) };
    const result = await this.send(
      `PATCH ${type}/${id}`,
      { type, id },
      (init) =>
        this.api.PATCH("/v1/entities/{type}/{id}", {
          params: { path: { type, id }, header },
          headers: { "Content-Type": contentType },
          body,
          ...init,
        }),
      options,
    );
    return dataOf(result);
  }

  /** One `GET /v1/topology`, for the router: it falls back to `baseUrl` rather than wait for retries. */
  private async fetchTopology(): Promise<Topology> {
    const result = await this.send("GET topology", undefined, (init) => this.api.GET("/v1/topology", init), {
      retry: { maxAttempts: 1 },
    });
    return dataOf(result);
  }

  /**
   * Sends one request until it gets an answer worth returning, by the retry policy. The request
   * is rebuilt for each attempt from the same arguments, headers (the idempotency key) included;
   * each attempt goes to the node the router picks then for `key` (`baseUrl` without a key), so
   * a retry follows a map that changed meanwhile.
   */
  private async send<R extends ApiResult>(
    label: string,
    key: EntityKey | undefined,
    attempt: (init: { signal: AbortSignal; baseUrl: string }) => Promise<R>,
    options: CallOptions,
  ): Promise<R> {
    const callerSignal = options.signal;
    const retry = options.retry ? { ...this.retry, ...options.retry } : this.retry;
    const started = Date.now();
    for (let attempts = 1; ; attempts += 1) {
      callerSignal?.throwIfAborted();
      const route = await this.router.route(key, callerSignal);
      const budget = Math.min(this.timeoutMs, retry.deadlineMs - (Date.now() - started));
      const { signal, timedOut, release } = attemptSignal(budget, callerSignal);
      let outcome: AttemptOutcome;
      let failure: unknown;
      try {
        const result = await attempt({ signal, baseUrl: route.origin });
        this.router.answered(route, result.response.headers);
        if (result.response.ok) return result;
        outcome = { kind: "response", status: result.response.status, retryAfter: result.response.headers.get("Retry-After") };
        failure = errorOf(result);
      } catch (error) {
        if (callerSignal?.aborted) throw callerSignal.reason;
        this.router.unanswered(route);
        outcome = timedOut() ? { kind: "timeout" } : { kind: "network-error" };
        failure = new NetworkError(
          `${label}: ${timedOut() ? `no answer within ${budget} ms` : "the connection failed"} (attempt ${attempts})`,
          attempts,
          { cause: error },
        );
      } finally {
        release();
      }
      const now = Date.now();
      const delay = retryDelay(outcome, { attempts, elapsedMs: now - started, nowMs: now }, retry);
      if (delay === null) throw failure;
      await sleep(delay, callerSignal);
    }
  }
}

/**
 * Creates a client for the apostate server at `options.baseUrl`.
 *
 * @example
 * import { createClient, EntityNotFoundError } from "apostate/client";
 * const db = createClient({ baseUrl: "http://127.0.0.1:8080", retry: { maxAttempts: 8, deadlineMs: 10_000 } });
 */
export function createClient(options: ClientOptions): ApostateClient {
  return new ApostateClient(options);
}

/** The strong `ETag` of a version; `undefined` leaves the header out. */
function entityTag(version: number | undefined): string | undefined {
  return version === undefined ? undefined : `"${version}"`;
}

function dataOf<T>(result: { data?: T; response: Response }): T {
  if (result.data === undefined) throw new HttpError(result.response.status, "");
  return result.data;
}

function errorOf(result: ApiResult): Error {
  if (isProblemBody(result.error)) return ProblemError.from(result.error);
  const body = typeof result.error === "string" ? result.error : (JSON.stringify(result.error) ?? "");
  return new HttpError(result.response.status, body);
}

/**
 * A signal for one attempt that fires on the caller's abort or after `timeoutMs`; `timedOut()`
 * tells the two apart, and `release()` drops the timer and the listener once the attempt ends.
 */
function attemptSignal(
  timeoutMs: number,
  callerSignal: AbortSignal | undefined,
): { signal: AbortSignal; timedOut: () => boolean; release: () => void } {
  const controller = new AbortController();
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, "TimeoutError"));
  }, timeoutMs);
  const onAbort = () => controller.abort(callerSignal?.reason);
  callerSignal?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: controller.signal,
    timedOut: () => expired,
    release: () => {
      clearTimeout(timer);
      callerSignal?.removeEventListener("abort", onAbort);
    },
  };
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
