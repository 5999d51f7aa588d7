import type { components } from "../../client/generated/openapi.js";
import { EXIT_CODES } from "./exit-codes.js";
import { OperatorError } from "./operator-admin.js";
import type { CommandResult } from "./operator-commands.js";
import type { RemoteConfig } from "./operator-options.js";
import { remote, type Remote } from "./remote-request.js";

type EntityData = components["schemas"]["EntityData"];

/** The two planes of a running server, each with its own token. */
export interface RemoteServer {
  data: Remote;
  admin: Remote;
}

export function remoteServer(config: RemoteConfig): RemoteServer {
  return {
    data: remote(config.url, config.token, "--token or APOSTATE_TOKEN"),
    admin: remote(config.url, config.adminToken, "--admin-token or APOSTATE_ADMIN_TOKEN"),
  };
}

const json = (value: unknown) => JSON.stringify(value, null, 2);
const done = (output: string): CommandResult => ({ output, exitCode: EXIT_CODES.ok });
const entityTag = (version: number | undefined) => (version === undefined ? undefined : `"${version}"`);

/** `apostate get <type> <id>`: the entity as JSON. */
export async function getCommand(server: RemoteServer, type: string, id: string): Promise<CommandResult> {
  const { api, call } = server.data;
  return done(json(await call(() => api.GET("/v1/entities/{type}/{id}", { params: { path: { type, id } } }))));
}

/** The data of `put`: a JSON object, from the command line or stdin. */
export function parseEntityData(text: string): EntityData {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new OperatorError(`the data is not JSON: ${(error as Error).message}`, EXIT_CODES.usage);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new OperatorError('the data must be a JSON object, such as {"balance": 100}', EXIT_CODES.usage);
  }
  return data as EntityData;
}

/** `apostate put <type> <id> [data]`: creates or replaces the entity; prints it as stored. */
export async function putCommand(
  server: RemoteServer,
  type: string,
  id: string,
  data: EntityData,
  options: { ifMatch?: number; ifNoneMatch?: boolean },
): Promise<CommandResult> {
  const { api, call } = server.data;
  const header = { "If-Match": entityTag(options.ifMatch), "If-None-Match": options.ifNoneMatch ? ("*" as const) : undefined };
  return done(
    json(await call(() => api.PUT("/v1/entities/{type}/{id}", { params: { path: { type, id }, header }, body: data }))),
  );
}

/** `apostate delete <type> <id>`. */
export async function deleteCommand(
  server: RemoteServer,
  type: string,
  id: string,
  options: { ifMatch?: number },
): Promise<CommandResult> {
  const { api, call } = server.data;
  const header = { "If-Match": entityTag(options.ifMatch) };
  await call(() => api.DELETE("/v1/entities/{type}/{id}", { params: { path: { type, id }, header } }));
  return done(`deleted ${type}/${id}`);
}

/** `apostate locate <type> <id>`: the slot and shard of a key (whether or not the entity exists). */
export async function locateCommand(
  server: RemoteServer,
  config: RemoteConfig,
  type: string,
  id: string,
): Promise<CommandResult> {
  const { api, call } = server.admin;
  const where = await call(() => api.GET("/admin/locate/{type}/{id}", { params: { path: { type, id } } }));
  const text = `${type}/${id}: slot ${where.slot}, shard ${where.shard}${where.exists ? "" : " (no such entity)"}`;
  return done(config.json ? json(where) : text);
}

/** What `apostate keys` lists: the ids of one type (data token) or the keys in one shard (admin token). */
export type KeysSource = { type: string; prefix?: string } | { shard: number };

/** `apostate keys`: one `type/id` per line, every page until `limit` keys. */
export async function keysCommand(
  server: RemoteServer,
  config: RemoteConfig,
  source: KeysSource,
  limit: number | undefined,
): Promise<CommandResult> {
  const keys: { type: string; id: string }[] = [];
  let cursor: string | undefined;
  do {
    const pageLimit = Math.min(1000, limit === undefined ? 1000 : limit - keys.length);
    const page =
      "shard" in source
        ? await server.admin.call(() =>
            server.admin.api.GET("/admin/shards/{shard}/entities", {
              params: { path: { shard: source.shard }, query: { limit: pageLimit, cursor } },
            }),
          )
        : await server.data.call(() =>
            server.data.api.GET("/v1/entities/{type}", {
              params: { path: { type: source.type }, query: { limit: pageLimit, cursor, prefix: source.prefix } },
            }),
          );
    keys.push(...page.items.map(({ type, id }) => ({ type, id })));
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined && (limit === undefined || keys.length < limit));
  return done(config.json ? json({ keys }) : keys.map(({ type, id }) => `${type}/${id}`).join("\n"));
}
