import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Idempotency } from "../entities/entity-store.js";
import type { Preconditions, VersionSet } from "../entities/preconditions.js";

const EMPTY_BODY_DIGEST = createHash("sha256").digest("hex");

/**
 * The key and the request's fingerprint: method, path, `If-Match`, `If-None-Match`,
 * `Content-Type` and the SHA-256 of the body as sent. The path is the canonical one for the
 * entity, so two spellings of one id (percent-encoded or not) are the same request. `bodyDigest`
 * is the body reader's, absent for a request without a body.
 */
export function idempotencyOf(
  req: IncomingMessage,
  canonicalPath: string,
  bodyDigest: string | undefined,
): Idempotency | undefined {
  const key = req.headers["idempotency-key"];
  if (typeof key !== "string") return undefined;
  const fingerprint = createHash("sha256")
    .update(
      [
        req.method ?? "",
        canonicalPath,
        req.headers["if-match"] ?? "",
        req.headers["if-none-match"] ?? "",
        req.headers["content-type"] ?? "",
        bodyDigest ?? EMPTY_BODY_DIGEST,
      ].join("\n"),
    )
    .digest("hex");
  return { key, fingerprint };
}

export function preconditionsOf(req: IncomingMessage): Preconditions {
  const ifMatch = req.headers["if-match"];
  const ifNoneMatch = req.headers["if-none-match"];
  return {
    ...(ifMatch !== undefined && { ifMatch: parseEntityTags(ifMatch, "strong") }),
    ...(ifNoneMatch !== undefined && { ifNoneMatch: parseEntityTags(ifNoneMatch, "weak") }),
  };
}

const ENTITY_TAG = /^(W\/)?"(\d{1,15})"$/;

/**
 * `*` or a list of entity tags, reduced to versions (RFC 9110 §13.1). `If-Match` compares
 * strongly, so a weak tag there never matches; a tag that is not one of ours matches nothing.
 */
export function parseEntityTags(header: string, comparison: "strong" | "weak"): VersionSet {
  if (header.trim() === "*") return "any";
  const versions: number[] = [];
  for (const tag of header.split(",")) {
    const match = ENTITY_TAG.exec(tag.trim());
    if (match && (comparison === "weak" || match[1] === undefined)) versions.push(Number(match[2]));
  }
  return versions;
}
