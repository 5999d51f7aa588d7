/** Where the next page of a shard's key listing starts: after this key. */
export interface KeyPosition {
  type: string;
  id: string;
}

/** A key-listing cursor that is not one this server wrote. */
export class InvalidKeyCursorError extends Error {}

/*
 * The admin key listing runs over one shard's primary key; a cursor only says where to resume.
 * It needs no signature: a made-up cursor can only skip keys the admin token may see anyway.
 */

/** The cursor of the page that starts after `position`. */
export function encodeKeyCursor(position: KeyPosition): string {
  return Buffer.from(JSON.stringify([position.type, position.id])).toString("base64url");
}

/** Where a cursor says to resume; {@link InvalidKeyCursorError} when it is not one of ours. */
export function decodeKeyCursor(cursor: string): KeyPosition {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw new InvalidKeyCursorError("the cursor is damaged");
  }
  if (!Array.isArray(value) || value.length !== 2 || !value.every((part) => typeof part === "string")) {
    throw new InvalidKeyCursorError("the cursor is not a key-listing cursor");
  }
  const [type, id] = value as [string, string];
  return { type, id };
}
