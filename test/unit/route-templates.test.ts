import { describe, expect, it } from "vitest";
import { loadOpenApiDocument } from "../../server/http/openapi-document.js";
import { routeLabel, RouteTable, UNMATCHED_ROUTE } from "../../server/http/route-table.js";

const table = RouteTable.load((await loadOpenApiDocument()).document);
const routeOf = (path: string) => routeLabel(table.find(path));

describe("route templates of request paths (metrics and log labels)", () => {
  it.each([
    ["/v1/entities/account/alice", "/v1/entities/{type}/{id}"],
    ["/v1/entities/account/a%2Fb", "/v1/entities/{type}/{id}"],
    ["/v1/entities/account/alice/ops", "/v1/entities/{type}/{id}/ops"],
    ["/v1/entities/account", "/v1/entities/{type}"],
    ["/admin/shards", "/admin/shards"],
    ["/admin/shards/3", "/admin/shards/{shard}"],
    ["/admin/shards/3/entities", "/admin/shards/{shard}/entities"],
    ["/admin/shards/3/check", "/admin/shards/{shard}/check"],
    ["/admin/shards/3/backup", "/admin/shards/{shard}/backup"],
    ["/admin/locate/account/alice", "/admin/locate/{type}/{id}"],
    ["/healthz", "/healthz"],
    ["/readyz", "/readyz"],
    ["/metrics", "/metrics"],
    // Matched as the router matches: case-insensitive, with an optional trailing slash.
    ["/V1/Entities/account/alice", "/v1/entities/{type}/{id}"],
    ["/admin/shards/", "/admin/shards"],
    ["/v1/entities//alice", UNMATCHED_ROUTE],
    ["/v1/entities/account/alice/other", UNMATCHED_ROUTE],
    ["/admin/shards/3/restore", UNMATCHED_ROUTE],
    ["/", "/"],
    ["/docs/swagger-ui.css", "/docs/{asset}"],
    ["/nowhere", UNMATCHED_ROUTE],
  ])("%s → %s", (path, template) => {
    expect(routeOf(path)).toBe(template);
  });
});

describe("the values of path parameters", () => {
  it("are the raw segments, decoded later once", () => {
    expect(table.find("/v1/entities/account/a%2Fb/ops")?.values).toEqual(["account", "a%2Fb"]);
    expect(table.find("/admin/shards/")?.values).toEqual([]);
  });
});

describe("binding handlers to the operations of openapi.yaml", () => {
  const entityRoutes = table.routes.filter((route) => route.template.startsWith("/v1/"));
  const handlers = {
    getEntity: "get",
    putEntity: "put",
    patchEntity: "patch",
    deleteEntity: "delete",
    applyOps: "ops",
    listEntities: "list",
    getTopology: "topology",
  };

  it("binds every operation, HEAD to the GET beside it", () => {
    const bound = table.bind(entityRoutes, handlers);
    const entity = table.find("/v1/entities/a/b")?.route;
    expect(
      Object.fromEntries([...(entity?.operations.values() ?? [])].map((operation) => [operation.method, bound.get(operation)])),
    ).toEqual({
      GET: "get",
      HEAD: "get",
      PUT: "put",
      PATCH: "patch",
      DELETE: "delete",
    });
  });

  it("fails at once, naming each operation without a handler", () => {
    const { applyOps: _ops, listEntities: _list, ...incomplete } = handlers;
    expect(() => table.bind(entityRoutes, incomplete)).toThrow(
      "openapi.yaml declares operations that have no handler: GET /v1/entities/{type} (listEntities), HEAD /v1/entities/{type} (listEntities), POST /v1/entities/{type}/{id}/ops (applyOps)",
    );
  });

  it("takes no inherited member for a handler", () => {
    const inherited = Object.create({ getEntity: "inherited" }) as Record<string, string>;
    expect(() => table.bind(entityRoutes, inherited)).toThrow(/GET \/v1\/entities\/\{type\}\/\{id\} \(getEntity\)/);
  });
});
