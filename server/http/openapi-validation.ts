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

export const JSON_MEDIA_TYPES = ["application/json", "application/merge-patch+json", "application/json-patch+json"];

/** Parses JSON bodies up to the limit, keeping the raw bytes' digest for idempotency fingerprints. */
export function jsonBody(limit: number): RequestHandler {
  return express.json({
    type: JSON_MEDIA_TYPES,
    limit,
    verify: (req, _res, body) => rememberBodyDigest(req as express.Request, body),
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
 * Validates every request against openapi.yaml: routes, methods, parameters, media types,
 * bodies. It is express-openapi-validator's request validator (its Ajv schemas, compiled once
 * per operation, and its errors) behind a route table built once. The library's own middleware
 * compiles every route's path pattern again on each request and hops through four promises;
 * profiles showed that as the largest cost of a read.
 */
export function openApiValidation(): RequestHandler {
  const compiled = compileValidation();
  let validate: RequestHandler | undefined;
  compiled.then(
    (handler) => (validate = handler),
    // The first requests report the failure through `next` below.
    () => undefined,
  );
  return (req, res, next) => {
    if (validate) {
      validate(req, res, next);
      return;
    }
    compiled.then((handler) => handler(req, res, next)).catch(next);
  };
}

interface CompiledRoute {
  /** Matched as express matches by default: case-insensitive, with an optional trailing slash. */
  pattern: RegExp;
  paramNames: string[];
  expressRoute: string;
  openApiRoute: string;
  operations: Map<string, OpenAPIV3.OperationObject>;
  allow: string;
}

async function compileValidation(): Promise<RequestHandler> {
  // Normalises the options exactly as the library's own middleware does.
  const validator = new OpenApiValidator(VALIDATOR_OPTIONS);
  const spec = await new OpenApiSpecLoader({ apiDoc: OPENAPI_PATH, validateApiSpec: true, $refParser: { mode: "bundle" } }).load();
  // The library passes its (normalised, here `false`) response options the same way.
  new SchemaPreprocessor(
    spec.apiDoc,
    validator.ajvOpts.preprocessor,
    validator.options.validateResponses as ConstructorParameters<typeof SchemaPreprocessor>[2],
  ).preProcess();
  const requests = new RequestValidator(spec.apiDoc as OpenAPIV3.DocumentV3, validator.ajvOpts.request);
  const routes = compileRoutes(spec.apiDoc as OpenAPIV3.DocumentV3, spec.routes);

  return (req, res, next) => {
    const path = req.originalUrl.split("?", 1)[0] ?? "";
    for (const route of routes) {
      const match = route.pattern.exec(path);
      if (!match) continue;
      const schema = route.operations.get(req.method);
      if (!schema) {
        throw new MethodNotAllowed({ path: req.path, message: `${req.method} method not allowed`, headers: { Allow: route.allow } });
      }
      const pathParams: Record<string, string> = {};
      try {
        route.paramNames.forEach((name, i) => (pathParams[name] = decodeURIComponent(match[i + 1] ?? "")));
      } catch {
        throw new BadRequest({ path: req.path, message: "malformed uri'" });
      }
      (req as OpenApiRequest).openapi = {
        expressRoute: route.expressRoute,
        openApiRoute: route.openApiRoute,
        pathParams,
        schema,
        serial: spec.serial,
      };
      return requests.validate(req as OpenApiRequest, res, next);
    }
    throw new NotFound({ path: req.path, message: "not found" });
  };
}

/** One entry per path of openapi.yaml, static paths first (the loader sorts them so). */
function compileRoutes(apiDoc: OpenAPIV3.DocumentV3, routes: RouteMetadata[]): CompiledRoute[] {
  const compiled = new Map<string, CompiledRoute>();
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
        openApiRoute: route.openApiRoute,
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
