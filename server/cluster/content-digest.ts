import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";

/** RFC 9530's `Content-Digest` value for a SHA-256 hash: `sha-256=:<base64>:`. */
export function contentDigest(hash: Hash): string {
  return `sha-256=:${hash.digest("base64")}:`;
}

/** The `Content-Digest` of a file, read as a stream so that the event loop keeps serving meanwhile. */
export async function fileContentDigest(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return contentDigest(hash);
}
