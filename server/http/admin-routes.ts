import { Router, type ErrorRequestHandler, type Request } from "express";
import { InvalidKeyCursorError } from "../admin/key-cursor.js";
import { UnknownShardError, type ShardAdmin } from "../admin/shard-admin.js";
import { ProblemError } from "./problems.js";

const DEFAULT_PAGE_SIZE = 100;

type ShardParams = { shard: string };

/**
 * The `/admin` routes. Parameters arrive validated against openapi.yaml (a shard is a
 * non-negative integer, a key has the entity key's form); whether the shard exists is the
 * admin layer's answer.
 */
export function adminRoutes(admin: ShardAdmin): Router {
  const router = Router();

  router.get("/admin/shards", (_req, res) => {
    res.json({ shards: admin.list() });
  });

  router.get("/admin/shards/:shard", (req: Request<ShardParams>, res) => {
    res.json(admin.info(shardOf(req)));
  });

  router.get("/admin/shards/:shard/entities", (req: Request<ShardParams>, res) => {
    const { limit, cursor } = req.query as { limit?: string; cursor?: string };
    const page = admin.keys(shardOf(req), {
      limit: limit === undefined ? DEFAULT_PAGE_SIZE : Number(limit),
      ...(cursor !== undefined && { cursor }),
    });
    res.json(page);
  });

  router.get("/admin/locate/:type/:id", (req: Request<{ type: string; id: string }>, res) => {
    res.json(admin.locate(req.params.type, req.params.id));
  });

  router.post("/admin/shards/:shard/check", async (req: Request<ShardParams>, res) => {
    res.json(await admin.check(shardOf(req)));
  });

  router.post("/admin/shards/:shard/backup", async (req: Request<ShardParams>, res) => {
    res.json(await admin.backup(shardOf(req)));
  });

  router.use(adminProblems);
  return router;
}

/*
 * The validator coerces the parameter with Number(), which also takes "0x1", "0b1", "+1" and
 * " 1"; a shard is named by its decimal number only.
 */
const SHARD_NUMBER = /^[0-9]{1,9}$/;

function shardOf(req: Request<ShardParams>): number {
  if (!SHARD_NUMBER.test(req.params.shard)) {
    throw new ProblemError("invalid-key", `/params/shard: "${req.params.shard}" is not a decimal shard number`);
  }
  return Number(req.params.shard);
}

/** The admin layer's own failures, as problems; everything else goes on unchanged. */
const adminProblems: ErrorRequestHandler = (error: unknown, _req, _res, next) => {
  if (error instanceof UnknownShardError) next(new ProblemError("route-not-found", error.message));
  else if (error instanceof InvalidKeyCursorError) next(new ProblemError("invalid-cursor", error.message));
  else next(error);
};
