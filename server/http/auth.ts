import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
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

/** Checks a request's token: throws `unauthorized` unless it is allowed. */
export type TokenCheck = (req: IncomingMessage, res: ServerResponse) => void;

/** Requires `Authorization: Bearer <token>` when a token is configured; open otherwise. */
export function bearerCheck(token: string | undefined): TokenCheck {
  if (token === undefined) return () => undefined;
  const expected = digest(token);
  return (req, res) => {
    // The scheme is case-insensitive (RFC 9110, section 11.1).
    const given = BEARER.exec(req.headers.authorization ?? "")?.[1];
    if (given === undefined || !timingSafeEqual(digest(given), expected)) {
      res.setHeader("WWW-Authenticate", 'Bearer realm="apostate"');
      throw new ProblemError("unauthorized", "a valid bearer token is required");
    }
  };
}

/** {@link bearerCheck} as express middleware. */
export function bearerAuth(token: string | undefined): RequestHandler {
  const check = bearerCheck(token);
  return (req, res, next) => {
    check(req, res);
    next();
  };
}
