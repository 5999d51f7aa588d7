import { ProblemError } from "./problems.js";

/** A JSON Schema as openapi.yaml writes it (the OpenAPI 3.0 dialect), every `$ref` resolved. */
export type Schema = Readonly<Record<string, unknown>>;

export interface Parameter {
  name: string;
  in: "path" | "query" | "header";
  required: boolean;
  schema: Schema;
}

/** One operation of openapi.yaml, with the parameters of its path item merged in. */
export interface Operation {
  operationId: string;
  method: string;
  parameters: readonly Parameter[];
  /** The schema of the body by media type; absent when the operation takes no body. */
  body?: ReadonlyMap<string, Schema>;
  /** Whether the query is checked against the declared parameters, or ignored (probes, metrics). */
  strictQuery: boolean;
  /** The operation whose handler serves this one: itself, or for HEAD the GET of the same path. */
  servedBy: string;
  /** A body limit of the operation's own (`x-apostate-body-limit`, bytes), over `--body-limit`. */
  bodyLimit?: number;
}

/** One path of openapi.yaml, matched as express matches by default: case-insensitive, with an optional trailing slash. */
export interface ApiRoute {
  pattern: RegExp;
  paramNames: readonly string[];
  /** The path as openapi.yaml writes it, `/v1/entities/{type}/{id}`. */
  template: string;
  operations: ReadonlyMap<string, Operation>;
  /** The `Allow` header of a 405. */
  allow: string;
}

/** A path's route and the raw (still percent-encoded) values of its path parameters. */
export interface RouteMatch {
  route: ApiRoute;
  values: readonly string[];
}

/** The label of a request whose path is no route of the API. */
export const UNMATCHED_ROUTE = "unmatched";

const METHODS = ["get", "head", "put", "patch", "post", "delete"] as const;

/*
 * A typo in a query parameter of the data or admin API is refused rather than ignored; probes
 * and scrapers add query strings of their own (cache busters), so those routes ignore them.
 */
const STRICT_QUERY_PREFIXES = ["/v1/", "/admin/"];

type Json = Record<string, unknown>;

/**
 * The routes of openapi.yaml, built once at start-up.
 *
 * @example
 * const table = RouteTable.load((await loadOpenApiDocument()).document);
 * table.find("/v1/entities/account/alice")?.template; // "/v1/entities/{type}/{id}"
 */
export class RouteTable {
  private constructor(readonly routes: readonly ApiRoute[]) {}

  static load(document: Json): RouteTable {
    const resolve = refResolver(document);
    const paths = Object.entries(resolve(document.paths) as Record<string, Json>);
    const routes = paths.map(([template, item]) => compileRoute(template, item));
    // Static segments before parameters, so a literal path wins over a template that could also match it.
    routes.sort((a, b) => a.paramNames.length - b.paramNames.length);
    return new RouteTable(routes);
  }

  /** The route a path belongs to, whatever the method. */
  find(path: string): RouteMatch | undefined {
    for (const route of this.routes) {
      const match = route.pattern.exec(path);
      if (match) return { route, values: match.slice(1) };
    }
    return undefined;
  }

  /**
   * Pairs every operation of `routes` with its handler, by operationId. A declared operation
   * without a handler fails here, at start-up, rather than as a 404 on the first request.
   */
  bind<H>(routes: readonly ApiRoute[], handlers: Readonly<Record<string, H>>): ReadonlyMap<Operation, H> {
    const bound = new Map<Operation, H>();
    const missing: string[] = [];
    for (const route of routes) {
      for (const operation of route.operations.values()) {
        const handler = Object.hasOwn(handlers, operation.servedBy) ? handlers[operation.servedBy] : undefined;
        if (handler === undefined) missing.push(`${operation.method} ${route.template} (${operation.servedBy})`);
        else bound.set(operation, handler);
      }
    }
    if (missing.length > 0) throw new Error(`openapi.yaml declares operations that have no handler: ${missing.join(", ")}`);
    return bound;
  }
}

/** The operation of a route that serves the request's method; 405 with `Allow` when there is none. */
export function operationOf(route: ApiRoute, method: string | undefined): Operation {
  const operation = route.operations.get(method ?? "");
  if (!operation) {
    throw new ProblemError("method-not-allowed", `${method} is not allowed on ${route.template}`, {
      headers: { Allow: route.allow },
    });
  }
  return operation;
}

/**
 * A route's template (`/v1/entities/{type}/{id}`), so metrics and logs group requests by route
 * with a bounded set of labels, including requests refused before any handler.
 */
export function routeLabel(match: RouteMatch | undefined): string {
  return match?.route.template ?? UNMATCHED_ROUTE;
}

/** The path of a request's URL. */
export function pathOf(url: string): string {
  const queryStart = url.indexOf("?");
  return queryStart === -1 ? url : url.slice(0, queryStart);
}

function compileRoute(template: string, item: Json): ApiRoute {
  const paramNames: string[] = [];
  const source = template
    .split("/")
    .map((segment) => {
      const param = /^\{([^}]+)\}$/.exec(segment);
      if (!param) return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      paramNames.push(param[1] as string);
      return "([^/]+)";
    })
    .join("/");
  const strictQuery = STRICT_QUERY_PREFIXES.some((prefix) => template.startsWith(prefix));
  const pathParameters = (item.parameters ?? []) as Parameter[];
  const operations = new Map<string, Operation>();
  for (const method of METHODS) {
    const operation = item[method] as Json | undefined;
    if (!operation) continue;
    const operationId = operation.operationId;
    if (typeof operationId !== "string") throw new Error(`openapi.yaml: ${method} ${template} has no operationId`);
    const content = (operation.requestBody as { content?: Record<string, { schema?: Schema }> } | undefined)?.content;
    const getId = (item.get as Json | undefined)?.operationId;
    const bodyLimit = operation["x-apostate-body-limit"];
    operations.set(method.toUpperCase(), {
      operationId,
      method: method.toUpperCase(),
      parameters: mergeParameters(pathParameters, (operation.parameters ?? []) as Parameter[]),
      ...(content && { body: new Map(Object.entries(content).map(([type, media]) => [type, media.schema ?? {}])) }),
      strictQuery,
      servedBy: method === "head" && typeof getId === "string" ? getId : operationId,
      ...(typeof bodyLimit === "number" && { bodyLimit }),
    });
  }
  return {
    pattern: new RegExp(`^${source}/?$`, "i"),
    paramNames,
    template,
    operations,
    allow: [...operations.keys()].join(", "),
  };
}

/** An operation's parameters override the path item's of the same name and place (OpenAPI 3.0, "parameters"). */
function mergeParameters(pathLevel: Parameter[], operationLevel: Parameter[]): Parameter[] {
  const key = (parameter: Parameter) => `${parameter.in}:${parameter.name.toLowerCase()}`;
  const merged = new Map(pathLevel.map((parameter) => [key(parameter), parameter]));
  for (const parameter of operationLevel) merged.set(key(parameter), parameter);
  return [...merged.values()].map((parameter) => ({ ...parameter, required: parameter.required === true }));
}

/**
 * Replaces every local `$ref` (`#/components/...`) with what it points to, resolved in turn. Each
 * target is resolved once and shared by every reference to it (nothing changes a schema): the
 * document's schemas refer to one another so much that a copy per reference made this the
 * slowest step of a worker's start-up. The document has no recursive schemas; a cycle would
 * fail here, at start-up.
 */
function refResolver(document: Json): (value: unknown) => unknown {
  const resolved = new Map<string, unknown>();
  const resolving = new Set<string>();
  const resolve = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(resolve);
    if (value === null || typeof value !== "object") return value;
    const ref = (value as Json).$ref;
    if (typeof ref !== "string") return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, resolve(item)]));
    if (resolved.has(ref)) return resolved.get(ref);
    if (resolving.has(ref)) throw new Error(`openapi.yaml: ${ref} refers to itself`);
    resolving.add(ref);
    const target = resolve(pointerTarget(document, ref));
    resolving.delete(ref);
    resolved.set(ref, target);
    return target;
  };
  return resolve;
}

function pointerTarget(document: Json, ref: string): unknown {
  if (!ref.startsWith("#/")) throw new Error(`openapi.yaml: only local references are supported, not ${ref}`);
  let target: unknown = document;
  for (const segment of ref.slice(2).split("/")) {
    const name = segment.replaceAll("~1", "/").replaceAll("~0", "~");
    target = target !== null && typeof target === "object" && Object.hasOwn(target, name) ? (target as Json)[name] : undefined;
    if (target === undefined) throw new Error(`openapi.yaml: ${ref} points to nothing`);
  }
  return target;
}
