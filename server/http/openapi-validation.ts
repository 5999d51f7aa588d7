import type { IncomingMessage, ServerResponse } from "node:http";
import { parse as parseQuery } from "node:querystring";
import { fileURLToPath } from "node:url";
import express, { type RequestHandler } from "express";
import { SchemaPreprocessor } from "express-openapi-validator/dist/middlewares/parsers/schema.preprocessor.js";
import { RequestValidator } from "express-openapi-validator/dist/middlewares/openapi.request.validator.js";
import { OpenApiSpecLoader, type RouteMetadata } from "express-openapi-validator/dist/framework/openapi.spec.loader.js";
import {
  BadRequest,
  MethodNotAllowed,
  NotFound,
  type OpenAPIV3,
  type OpenApiRequest,
} from "express-openapi-validator/dist/framework/types.js";
import { OpenApiValidator } from "express-openapi-validator/dist/openapi.validator.js";
import { rememberBodyDigest } from "./request-headers.js";

/** openapi.yaml, the one source of truth for the HTTP contract (`npm run build` copies it into dist/). */
export const OPENAPI_PATH = fileURLToPath(new URL("../../openapi.yaml", import.meta.url));

const JSON_MEDIA_TYPES = ["application/json", "application/merge-patch+json", "application/json-patch+json"];

/**
 * Parses JSON bodies up to the limit, keeping the raw bytes' digest for idempotency fingerprints.
 * body-parser needs nothing of express, so the data plane (data-plane.ts) uses it as it is.
 */
export function jsonBody(limit: number): RequestHandler {
  return express.json({
    type: JSON_MEDIA_TYPES,
    limit,
    verify: (req, _res, body) => rememberBodyDigest(req, body),
  });
}

const VALIDATOR_OPTIONS = {
  apiSpec: OPENAPI_PATH,
  validateRequests: { allowUnknownQueryParameters: false },
  validateResponses: false,
  validateSecurity: false,
  ignoreUndocumented: false,
} as const;

/**
 * A request as the validator and the route handlers see it: node's request with what express
 * would have added (path, query, params) and the parsed body. The data plane serves these
 * without express, so the fields are filled here rather than by express's request prototype.
 */
export interface ApiRequest extends IncomingMessage {
  path: string;
  originalUrl: string;
  query: Record<string, string | string[] | undefined>;
  params: Record<string, string>;
  body?: unknown;
}

/** The label of a request whose path is no route of the API. */
export const UNMATCHED_ROUTE = "unmatched";

/** One path of openapi.yaml, matched as express matches by default: case-insensitive, with an optional trailing slash. */
export interface ApiRoute {
  pattern: RegExp;
  paramNames: string[];
  expressRoute: string;
  /** The path as openapi.yaml writes it, `/v1/entities/{type}/{id}`. */
  template: string;
  operations: Map<string, OpenAPIV3.OperationObject>;
  allow: string;
}

/**
 * Validates requests against openapi.yaml: routes, methods, parameters, media types, bodies.
 * It is express-openapi-validator's request validator (its Ajv schemas, compiled once per
 * operation, and its errors) behind a route table built once. The library's own middleware
 * compiles every route's path pattern again on each request and hops through four promises;
 * profiles showed that as the largest cost of a read.
 */
export class OpenApi {
  private constructor(
    readonly routes: readonly ApiRoute[],
    private readonly requests: RequestValidator,
    private readonly serial: number,
  ) {}

  static async load(): Promise<OpenApi> {
    // Normalises the options exactly as the library's own middleware does.
    const validator = new OpenApiValidator(VALIDATOR_OPTIONS);
    const spec = await new OpenApiSpecLoader({
      apiDoc: OPENAPI_PATH,
      validateApiSpec: true,
      $refParser: { mode: "bundle" },
    }).load();
    // The library passes its (normalised, here `false`) response options the same way.
    new SchemaPreprocessor(
      spec.apiDoc,
      validator.ajvOpts.preprocessor,
      validator.options.validateResponses as ConstructorParameters<typeof SchemaPreprocessor>[2],
    ).preProcess();
    const apiDoc = spec.apiDoc as OpenAPIV3.DocumentV3;
    return new OpenApi(compileRoutes(apiDoc, spec.routes), new RequestValidator(apiDoc, validator.ajvOpts.request), spec.serial);
  }

  /** The route a path belongs to, whatever the method. */
  find(path: string): ApiRoute | undefined {
    return this.routes.find((route) => route.pattern.test(path));
  }

  /**
   * Validates a request (the body already parsed) and fills in its `params`; returns the
   * operation's id. Throws the validator's errors: 404, 405, 400 for anything refused.
   */
  validate(req: ApiRequest, res: ServerResponse, route = this.find(req.path)): string | undefined {
    const match = route?.pattern.exec(req.path);
    if (!route || !match) throw new NotFound({ path: req.path, message: "not found" });
    const schema = route.operations.get(req.method ?? "");
    if (!schema) {
      throw new MethodNotAllowed({
        path: req.path,
        message: `${req.method} method not allowed`,
        headers: { Allow: route.allow },
      });
    }
    const pathParams: Record<string, string> = {};
    try {
      route.paramNames.forEach((name, i) => (pathParams[name] = decodeURIComponent(match[i + 1] ?? "")));
    } catch {
      throw new BadRequest({ path: req.path, message: "malformed uri'" });
    }
    const openApiRequest = req as unknown as OpenApiRequest; // the library types requests as express's; it reads only the fields of ApiRequest
    openApiRequest.openapi = {
      expressRoute: route.expressRoute,
      openApiRoute: route.template,
      pathParams,
      schema,
      serial: this.serial,
    };
    // The validator calls `next` synchronously when the request is valid and throws when it is not.
    this.requests.validate(openApiRequest, res as unknown as Parameters<RequestValidator["validate"]>[1], () => undefined);
    return schema.operationId;
  }

  /** {@link validate} as express middleware, for the routes express serves. */
  middleware(): RequestHandler {
    return (req, res, next) => {
      this.validate(req as ApiRequest, res);
      next();
    };
  }
}

/**
 * A route's template (`/v1/entities/{type}/{id}`), so metrics and logs group requests by route
 * with a bounded set of labels, including requests refused before any handler.
 */
export function routeLabel(route: ApiRoute | undefined): string {
  return route?.template ?? UNMATCHED_ROUTE;
}

/** The path of a request's URL. */
export function pathOf(url: string): string {
  const queryStart = url.indexOf("?");
  return queryStart === -1 ? url : url.slice(0, queryStart);
}

/** Gives node's request the fields of {@link ApiRequest} that express would have set. */
export function toApiRequest(req: IncomingMessage, path: string): ApiRequest {
  const url = req.url ?? "/";
  const queryStart = url.indexOf("?");
  return Object.assign(req, {
    originalUrl: url,
    path,
    // express 5's default ("simple") query parser is node's querystring.
    query: queryStart === -1 ? {} : parseQuery(url.slice(queryStart + 1)),
    params: {},
  });
}

/** One entry per path of openapi.yaml, static paths first (the loader sorts them so). */
function compileRoutes(apiDoc: OpenAPIV3.DocumentV3, routes: RouteMetadata[]): ApiRoute[] {
  const compiled = new Map<string, ApiRoute>();
  for (const route of routes) {
    let entry = compiled.get(route.openApiRoute);
    if (!entry) {
      const paramNames: string[] = [];
      const source = route.openApiRoute
        .split("/")
        .map((segment) => {
          const param = /^\{([^}]+)\}$/.exec(segment);
          if (!param) return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
          paramNames.push(param[1] as string);
          return "([^/]+)";
        })
        .join("/");
      entry = {
        pattern: new RegExp(`^${source}/?$`, "i"),
        paramNames,
        expressRoute: route.expressRoute,
        template: route.openApiRoute,
        operations: new Map(),
        allow: "",
      };
      compiled.set(route.openApiRoute, entry);
    }
    const operation = apiDoc.paths[route.openApiRoute.slice(route.basePath.length)]?.[route.method.toLowerCase() as "get"];
    if (operation) entry.operations.set(route.method, operation);
    entry.allow = [...entry.operations.keys()].map((method) => method.toLowerCase()).join(", ");
  }
  return [...compiled.values()];
}
