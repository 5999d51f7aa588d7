import type { operations } from "../../client/generated/openapi.js";
import type { ShardSet } from "../storage/data-directory.js";
import type { ControlHandler } from "./control-plane.js";
import { ProblemError } from "./problems.js";

const RETRY_AFTER_SECONDS = "5";

/**
 * `/healthz`: the process answers. `/readyz`: it can serve writes: every shard is open and
 * writable, shutdown has not begun (a load balancer should stop sending before it ends), and on a
 * cluster node, the node holds its lease and has the map.
 * Both are open, without a token, for probes.
 */
export function healthHandlers(shards: ShardSet, isStopping: () => boolean, clusterUnreadiness?: () => string | undefined) {
  return {
    healthz: (_req, res) => {
      res.json({ status: "ok" });
    },
    readyz: (_req, res) => {
      const unavailable = (detail: string) =>
        new ProblemError("unavailable", detail, { headers: { "Retry-After": RETRY_AFTER_SECONDS } });
      if (isStopping()) throw unavailable("the server is shutting down");
      const closed = shards.shards.filter((shard) => !shard.isWritable()).map((shard) => shard.placement.shard);
      if (closed.length > 0) throw unavailable(`not open for writing: shard ${closed.join(", ")}`);
      const notReady = clusterUnreadiness?.();
      if (notReady) throw unavailable(notReady);
      res.json({ status: "ok", shards: shards.shards.length });
    },
  } satisfies Partial<Record<keyof operations, ControlHandler>>;
}
