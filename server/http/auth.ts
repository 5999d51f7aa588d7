import { createHash, timingSafeEqual } from "node:crypto";
import type { RequestHandler } from "express";
import { ProblemError } from "./problems.js";

/*
 * Tokens are compared as SHA-256 digests: equal lengths for timingSafeEqual, so neither the
 * token's content nor its length leaks through timing.
 */
function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

const BEARER = /^bearer +(\S+) *$/i;

/** Requires `Authorization: Bearer <token>` when a token is configured; open otherwise. */
export function bearerAuth(token: string | undefined): RequestHandler {
  if (token === undefined) return (_req, _res, next) => next();
  const expected = digest(token);
  return (req, res, next) => {
    // The scheme is case-insensitive (RFC 9110, section 11.1).
    const given = BEARER.exec(req.headers.authorization ?? "")?.[1];
    if (given === undefined || !timingSafeEqual(digest(given), expected)) {
      res.setHeader("WWW-Authenticate", 'Bearer realm="apostate"');
      throw new ProblemError("unauthorized", "a valid bearer token is required");
    }
    next();
  };
}
