import { describe, expect, it } from "vitest";
import { OpenApi, routeLabel, UNMATCHED_ROUTE } from "../../server/http/openapi-validation.js";

const api = await OpenApi.load();
const routeOf = (path: string) => routeLabel(api.find(path));

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
