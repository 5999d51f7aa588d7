/*
 * Web Crypto (`globalThis.crypto`) rather than node:crypto, so the client runs wherever fetch
 * does: Node 20+, Deno, Bun, browsers and edge runtimes.
 */

/** A new random (v4) UUID. */
export function randomUuid(): string {
  return globalThis.crypto.randomUUID();
}

/** The SHA-256 of a string's UTF-8 bytes, as 64 hex digits. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}
