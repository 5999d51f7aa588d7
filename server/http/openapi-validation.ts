import { fileURLToPath } from "node:url";
import express, { type RequestHandler } from "express";
import * as OpenApiValidator from "express-openapi-validator";
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

/** Validates every request against openapi.yaml: routes, methods, parameters, media types, bodies. */
export function openApiValidation(): RequestHandler[] {
  return OpenApiValidator.middleware({
    apiSpec: OPENAPI_PATH,
    validateRequests: { allowUnknownQueryParameters: false },
    validateResponses: false,
    validateSecurity: false,
    ignoreUndocumented: false,
  });
}
