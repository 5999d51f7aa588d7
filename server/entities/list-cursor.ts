import { createHmac, timingSafeEqual } from "node:crypto";

/** Where a list page ends, bound to the query it belongs to. */
export interface ListPosition {
  type: string;
  prefix: string;
  after: string;
}

export class InvalidCursorError extends Error {}

/**
 * List cursors are opaque, signed tokens: `base64url(position) "." base64url(HMAC)`. The
 * signature makes a forged or damaged cursor detectable, and the position names its type and
 * prefix, so a cursor from another query is refused rather than silently misread.
 */
export class ListCursorCodec {
  private readonly secret: Buffer;

  constructor(secretHex: string) {
    this.secret = Buffer.from(secretHex, "hex");
  }

  encode(position: ListPosition): string {
    const payload = Buffer.from(JSON.stringify([position.type, position.prefix, position.after])).toString("base64url");
    return `${payload}.${this.sign(payload)}`;
  }

  /** The position after which the page continues, or InvalidCursorError. */
  decode(cursor: string, expected: { type: string; prefix: string }): string {
    const [payload, signature, extra] = cursor.split(".");
    if (payload === undefined || signature === undefined || extra !== undefined) {
      throw new InvalidCursorError("the cursor is malformed");
    }
    // Compared as text: decoding first would ignore a flipped padding bit in the last character.
    const given = Buffer.from(signature);
    const wanted = Buffer.from(this.sign(payload));
    if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) {
      throw new InvalidCursorError("the cursor is damaged or was not issued by this store");
    }
    const [type, prefix, after] = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as [string, string, string];
    if (type !== expected.type || prefix !== expected.prefix) {
      throw new InvalidCursorError("the cursor belongs to another type or prefix");
    }
    return after;
  }

  private sign(payload: string): string {
    return createHmac("sha256", this.secret).update(payload).digest().subarray(0, 16).toString("base64url");
  }
}
