import type { OperatorAdmin } from "./operator-admin.js";
import { remote } from "./remote-request.js";

/** The admin API of the server at `url` (its origin), through the types generated from openapi.yaml. */
export function remoteAdmin(url: string, adminToken: string | undefined): OperatorAdmin {
  const { api, call } = remote(url, adminToken, "--admin-token or APOSTATE_ADMIN_TOKEN");
  const shard = (shard: number) => ({ params: { path: { shard } } });
  return {
    source: url,
    shardNumbers: async () => (await call(() => api.GET("/admin/shards"))).shards.map((info) => info.shard),
    shards: async () => (await call(() => api.GET("/admin/shards"))).shards,
    check: (number) => call(() => api.POST("/admin/shards/{shard}/check", shard(number))),
    backup: (number) => call(() => api.POST("/admin/shards/{shard}/backup", shard(number))),
    close: () => {},
  };
}
