import type { operations } from "../../client/generated/openapi.js";
import type { ShardAdmin } from "../admin/shard-admin.js";
import type { ApiRequest } from "./api-request.js";
import type { ControlHandler } from "./control-plane.js";

const DEFAULT_PAGE_SIZE = 100;

/**
 * The `/admin` operations, by openapi.yaml's operationId. Parameters arrive validated (a shard is
 * a non-negative decimal integer, a key has the entity key's form); whether the shard exists is
 * the admin layer's answer.
 */
export function adminHandlers(admin: ShardAdmin) {
  return {
    listShards: (_req, res) => {
      res.json({ shards: admin.list() });
    },

    getShard: (req, res) => {
      res.json(admin.info(shardOf(req)));
    },

    listShardKeys: (req, res) => {
      const { limit, cursor } = req.query;
      const page = admin.keys(shardOf(req), {
        limit: typeof limit === "string" ? Number(limit) : DEFAULT_PAGE_SIZE,
        ...(typeof cursor === "string" && { cursor }),
      });
      res.json(page);
    },

    locateEntity: (req, res) => {
      res.json(admin.locate(req.params.type ?? "", req.params.id ?? ""));
    },

    checkShard: async (req, res) => {
      res.json(await admin.check(shardOf(req)));
    },

    backupShard: async (req, res) => {
      res.json(await admin.backup(shardOf(req)));
    },
  } satisfies Partial<Record<keyof operations, ControlHandler>>;
}

function shardOf(req: ApiRequest): number {
  return Number(req.params.shard);
}
