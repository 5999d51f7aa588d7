import createClient from "openapi-fetch";
import type { paths } from "../../client/generated/openapi.js";
import { OperatorError, type OperatorAdmin } from "./operator-admin.js";

/** The admin API of the server at `url` (its origin), through the types generated from openapi.yaml. */
export function remoteAdmin(url: string, adminToken: string | undefined): OperatorAdmin {
  const client = createClient<paths>({
    baseUrl: url,
    headers: adminToken === undefined ? {} : { Authorization: `Bearer ${adminToken}` },
  });
  const call = async <T>(request: () => Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> => {
    let result: Awaited<ReturnType<typeof request>>;
    try {
      result = await request();
    } catch (error) {
      const cause = (error as Error & { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
      throw new OperatorError(`cannot reach ${url}: ${cause}`);
    }
    if (result.data !== undefined) return result.data;
    const problem = result.error as { code?: string; detail?: string } | undefined;
    const hint = result.response.status === 401 ? " (set --admin-token or APOSTATE_ADMIN_TOKEN)" : "";
    throw new OperatorError(
      `${url} answered ${result.response.status} ${problem?.code ?? ""}: ${problem?.detail ?? result.response.statusText}${hint}`,
    );
  };
  const shard = (shard: number) => ({ params: { path: { shard } } });
  return {
    source: url,
    shardNumbers: async () => (await call(() => client.GET("/admin/shards"))).shards.map((info) => info.shard),
    shards: async () => (await call(() => client.GET("/admin/shards"))).shards,
    check: (number) => call(() => client.POST("/admin/shards/{shard}/check", shard(number))),
    backup: (number) => call(() => client.POST("/admin/shards/{shard}/backup", shard(number))),
    close: () => {},
  };
}
