import createClient, { type Client } from "openapi-fetch";
import type { paths } from "../../client/generated/openapi.js";
import { EXIT_CODES, exitCodeOfStatus } from "./exit-codes.js";
import { OperatorError } from "./operator-admin.js";

type ApiResult<T> = { data?: T; error?: unknown; response: Response };

/** One plane of a running server's HTTP API, with the token that plane takes. */
export interface Remote {
  readonly api: Client<paths>;
  /**
   * Sends one request (no retries: a quick look should fail fast) and resolves to its data.
   * Throws {@link OperatorError} with the exit code that tells a refusal from no answer.
   */
  call<T>(request: () => Promise<ApiResult<T>>): Promise<T>;
}

/** Why a request got no answer: the innermost cause's `code` (ECONNREFUSED, …) or message. */
function reasonOf(error: unknown): string {
  let reason = String(error);
  for (let cause: unknown = error; cause instanceof Error; cause = cause.cause) {
    reason = "code" in cause && typeof cause.code === "string" ? cause.code : cause.message;
  }
  return reason;
}

/**
 * The API of the server at `url` (its origin), through the types generated from openapi.yaml.
 * `tokenHint` names where the token comes from, for the message of a 401.
 */
export function remote(url: string, token: string | undefined, tokenHint: string): Remote {
  const api = createClient<paths>({
    baseUrl: url,
    headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
  });
  return {
    api,
    call: async <T>(request: () => Promise<ApiResult<T>>): Promise<T> => {
      let result: ApiResult<T>;
      try {
        result = await request();
      } catch (error) {
        throw new OperatorError(`cannot reach ${url}: ${reasonOf(error)}`, EXIT_CODES.unreachable);
      }
      // A 204 (DELETE) has no data at all.
      if (result.response.ok) return result.data as T;
      const { status, statusText } = result.response;
      const problem = result.error as { code?: string; detail?: string } | undefined;
      const hint = status === 401 ? ` (set ${tokenHint})` : "";
      throw new OperatorError(
        `${url} answered ${status} ${problem?.code ?? ""}: ${problem?.detail ?? statusText}${hint}`,
        exitCodeOfStatus(status),
      );
    },
  };
}
