import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Idempotency } from "../entities/entity-store.js";
import type { Preconditions, VersionSet } from "../entities/preconditions.js";

const EMPTY_BODY_DIGEST = createHash("sha256").digest("hex");

/**
 * The key and the request's fingerprint: method, `If-Match`, `If-None-Match`, `Content-Type`
 * and the SHA-256 of the body as sent, one per line (a header value holds no line break). The
 * path is the record's own key: a record belongs to its entity, and the method tells the
 * entity's routes apart (POST is `/ops`), so two spellings of one id are one request. The body's
 * digest is the only hash a request costs: the fingerprint is compared as it is. `bodyDigest`
 * is the body reader's, absent for a request without a body.
 */
export function idempotencyOf(
  req: IncomingMessage,
  canonicalPath: string,
  bodyDigest: string | undefined,
): Idempotency | undefined {
  const key = req.headers["idempotency-key"];
  if (typeof key !== "string") return undefined;
  const parts = [
    req.method ?? "",
    req.headers["if-match"] ?? "",
    req.headers["if-none-match"] ?? "",
    req.headers["content-type"] ?? "",
    bodyDigest ?? EMPTY_BODY_DIGEST,
  ];
  return {
    key,
    fingerprint: parts.join("\n"),
    // Records of the first schema hold a SHA-256 of the same parts with the canonical path second.
    formerFingerprint: () =>
      createHash("sha256")
        .update([parts[0], canonicalPath, ...parts.slice(1)].join("\n"))
        .digest("hex"),
  };
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
