import { expect } from "vitest";
import type { JsonValue } from "../../server/documents/json-value.js";
import { canonical } from "./document-model.js";
import { bodyOf, send } from "./http.js";

interface ListedEntity {
  id: string;
  version: number;
  data: string;
}

/** Every page of a listing, followed cursor by cursor; checks each page's own shape on the way. */
export async function listAll(baseUrl: string, type: string, prefix: string, limit: number): Promise<ListedEntity[]> {
  const items: ListedEntity[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 10_000; page++) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (prefix !== "") query.set("prefix", prefix);
    if (cursor !== null) query.set("cursor", cursor);
    const reply = await send(baseUrl, "GET", `/v1/entities/${type}?${query}`);
    expect(reply.status, reply.text).toBe(200);
    const body = bodyOf(reply) as {
      items: { type: string; id: string; version: number; data: JsonValue }[];
      nextCursor: string | null;
    };
    expect(body.items.length).toBeLessThanOrEqual(limit);
    for (const item of body.items) {
      expect(item.type).toBe(type);
      items.push({ id: item.id, version: item.version, data: canonical(item.data) });
    }
    cursor = body.nextCursor;
    if (cursor === null) return items;
  }
  throw new Error("the listing never ended");
}
