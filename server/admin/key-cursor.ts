import { createHash } from "node:crypto";

/** Where the next page of a shard's key listing starts: after this key. */
export interface KeyPosition {
  type: string;
  id: string;
}

/** A key-listing cursor that is not one this server wrote. */
export class InvalidKeyCursorError extends Error {}

/*
 * The admin key listing runs over one shard's primary key; a cursor only says where to resume.
 * It needs no signature (a made-up cursor can only skip keys the admin token may see anyway),
 * but a checksum, so that a damaged one is refused rather than resumed from somewhere else.
 */

/** The cursor of the page that starts after `position`: `base64url(position) "." checksum`. */
export function encodeKeyCursor(position: KeyPosition): string {
  const payload = Buffer.from(JSON.stringify([position.type, position.id])).toString("base64url");
  return `${payload}.${checksum(payload)}`;
}

function checksum(payload: string): string {
  return createHash("sha256").update(payload).digest().subarray(0, 8).toString("base64url");
}

/** Where a cursor says to resume; {@link InvalidKeyCursorError} when it is not one of ours. */
export function decodeKeyCursor(cursor: string): KeyPosition {
  const [payload = "", sum, extra] = cursor.split(".");
  // Compared as text: decoding would ignore a flipped padding bit in the last character.
  if (sum !== checksum(payload) || extra !== undefined) throw new InvalidKeyCursorError("the cursor is damaged");
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    throw new InvalidKeyCursorError("the cursor is damaged");
  }
  if (!Array.isArray(value) || value.length !== 2 || !value.every((part) => typeof part === "string")) {
    throw new InvalidKeyCursorError("the cursor is not a key-listing cursor");
  }
  const [type, id] = value as [string, string];
  return { type, id };
}
