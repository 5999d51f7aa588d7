import { readFileSync } from "node:fs";
import { OPENAPI_PATH } from "./openapi-validation.js";

/** The label of a request whose path is no route of the API. */
export const UNMATCHED_ROUTE = "unmatched";

/*
 * The path keys of openapi.yaml are its only lines with exactly two spaces of indent followed by
 * "/…:" — reading them that way spares a YAML parser for one list of strings.
 */
const PATH_KEY = /^ {2}(\/[^\s:]*):\s*$/gm;

/**
 * Maps a request path to its route template in openapi.yaml (`/v1/entities/{type}/{id}`), so
 * metrics and logs group requests by route with a bounded set of labels, including requests
 * that are refused before any route handler sees them (401, 400, 413).
 *
 * @example
 * const route = routeTemplates();
 * route("/v1/entities/account/alice") // "/v1/entities/{type}/{id}"
 * route("/nope")                      // "unmatched"
 */
export function routeTemplates(spec = readFileSync(OPENAPI_PATH, "utf8")): (path: string) => string {
  const templates = [...spec.matchAll(PATH_KEY)].map((match) => {
    const template = match[1] as string;
    return { template, segments: template.split("/") };
  });
  return (path) => {
    const segments = path.split("/");
    const found = templates.find(
      (candidate) =>
        candidate.segments.length === segments.length &&
        candidate.segments.every((part, i) => (part.startsWith("{") ? segments[i] !== "" : part === segments[i])),
    );
    return found?.template ?? UNMATCHED_ROUTE;
  };
}
