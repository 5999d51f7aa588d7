import type { IncomingMessage } from "node:http";
import type { RouteMatch } from "./route-table.js";

/**
 * A request as the route handlers see it: node's request with its route, its percent-decoded
 * path and query parameters and its parsed body, each checked against openapi.yaml. The
 * validator fills `params`, `query`, `body` and `bodyDigest`; until then they are empty.
 */
export interface ApiRequest extends IncomingMessage {
  path: string;
  originalUrl: string;
  /** The route of openapi.yaml the path matched, found once per request. */
  match: RouteMatch | undefined;
  query: Readonly<Record<string, string | string[]>>;
  params: Readonly<Record<string, string>>;
  body: unknown;
  /** The SHA-256 (hex) of the body as sent, when the request has an `Idempotency-Key`. */
  bodyDigest: string | undefined;
}

/**
 * Gives node's request the fields of {@link ApiRequest}. It is called before express sees the
 * request, so they are own properties, which take the place of the getters (`query`, `path`)
 * that express 5's request prototype has.
 */
export function toApiRequest(req: IncomingMessage, path: string, match: RouteMatch | undefined): ApiRequest {
  const fields: Omit<ApiRequest, keyof IncomingMessage> = {
    path,
    originalUrl: req.url ?? "/",
    match,
    query: {},
    params: {},
    body: undefined,
    bodyDigest: undefined,
  };
  return Object.assign(req, fields);
}
