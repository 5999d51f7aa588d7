import type { EntityStore, ListedItem, ListOptions, ListPage } from "../entities/entity-store.js";
import { mergeById } from "../entities/merge-by-id.js";
import type { ApiRequest } from "./api-request.js";
import type { ClusterRouter } from "./cluster-router.js";
import { ProblemError } from "./problems.js";

/** How long a node waits for another node's page before the list answers 503. */
const PAGE_TIMEOUT_MS = 10_000;

interface RemotePage {
  items: ListedItem[];
  more: boolean;
}

/** The headers a fanned-out page request carries on from the caller's request. */
function carriedHeaders(req: ApiRequest, self: string): Record<string, string> {
  const headers: Record<string, string> = { "apostate-forwarded-by": self };
  for (const name of ["authorization", "x-request-id"]) {
    const value = req.headers[name];
    if (typeof value === "string") headers[name] = value;
  }
  return headers;
}

async function remotePage(
  owner: { node: string; url: string | undefined },
  req: ApiRequest,
  self: string,
  type: string,
  options: ListOptions,
): Promise<RemotePage> {
  const unavailable = (why: string, cause?: unknown) =>
    new ProblemError("unavailable", `the list needs node ${owner.node}, which ${why}`, {
      headers: { "Retry-After": "1" },
      cause,
    });
  if (owner.url === undefined) throw unavailable("holds no lease");
  const url = new URL(`/v1/entities/${type}`, owner.url);
  url.searchParams.set("limit", String(options.limit));
  url.searchParams.set("scope", "node");
  if (options.prefix !== "") url.searchParams.set("prefix", options.prefix);
  if (options.cursor !== undefined) url.searchParams.set("cursor", options.cursor);
  let answer: Response;
  try {
    answer = await fetch(url, { headers: carriedHeaders(req, self), signal: AbortSignal.timeout(PAGE_TIMEOUT_MS) });
  } catch (error) {
    throw unavailable("cannot be reached", error);
  }
  if (answer.status !== 200) throw unavailable(`answered ${answer.status}`);
  const page = (await answer.json()) as { items: { id: string }[]; nextCursor: string | null };
  return { items: page.items.map((item) => ({ id: item.id, json: JSON.stringify(item) })), more: page.nextCursor !== null };
}

/**
 * One page of a list across the cluster: this node's own shards and, at the same time, the same
 * page from every other node that owns shards, merged by id. The cursor names only the last id,
 * signed with the cluster's secret, so any node continues the list.
 */
export async function listAcrossNodes(
  router: ClusterRouter,
  store: EntityStore,
  req: ApiRequest,
  type: string,
  options: ListOptions,
): Promise<ListPage> {
  const local = store.page(type, options);
  const self = router.state.self;
  const remote = await Promise.all(router.state.otherOwners().map((owner) => remotePage(owner, req, self, type, options)));
  const pages = [local, ...remote];
  const merged = mergeById(
    pages.map((page) => page.items[Symbol.iterator]()),
    options.limit + 1,
  );
  const items = merged.slice(0, options.limit);
  const more = merged.length > options.limit || pages.some((page) => page.more);
  const last = items.at(-1);
  return {
    items: items.map((item) => item.json),
    nextCursor: more && last ? store.cursorAfter(type, options.prefix, last.id) : null,
  };
}
