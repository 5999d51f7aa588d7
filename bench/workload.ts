/** The entities the benchmark preloads and the keys and bodies its requests pick. */
import type { BenchRequest } from "./load.js";

export const ENTITY_TYPE = "bench";

/** Ids sort in load order and are all the same length, so every entity has the same size. */
export function entityId(index: number): string {
  return `u${String(index).padStart(7, "0")}`;
}

/** A typical small document (~200 bytes of JSON): a few scalars, an array and a nested object. */
export function entityData(index: number, balance = 1000): Record<string, unknown> {
  const id = entityId(index);
  return {
    name: `User ${id}`,
    email: `${id}@example.com`,
    balance,
    active: true,
    tags: ["bench", "apostate"],
    address: { street: `${index % 1000} Main Street`, city: "Springfield", zip: String(10000 + (index % 90000)) },
  };
}

export const entityPath = (index: number) => `/v1/entities/${ENTITY_TYPE}/${entityId(index)}`;

export const JSON_HEADERS = { "Content-Type": "application/json" };
const BODY_POOL = 1_024;
const putBodies = Array.from({ length: BODY_POOL }, (_, i) => JSON.stringify(entityData(i, i)));

/** GET by key of the entity `pick()` names. */
export function getRequests(pick: () => number): () => BenchRequest {
  return () => ({ method: "GET", path: entityPath(pick()) });
}

/** PUT of a whole new document (of the preloaded size) to the entity `pick()` names. */
export function putRequests(pick: () => number): () => BenchRequest {
  return () => {
    const index = pick();
    return { method: "PUT", path: entityPath(index), headers: JSON_HEADERS, body: putBodies[index % BODY_POOL] as string };
  };
}

/** A uniform pick of an index in [0, count). */
export function uniformIndex(count: number): () => number {
  return () => Math.floor(Math.random() * count);
}

/**
 * A Zipf-distributed pick of an index in [0, count) with exponent `s`: index 0 is the hottest
 * key. The CDF is computed once, so each pick is one binary search.
 */
export function zipfIndex(count: number, s = 1.1): () => number {
  const cdf = new Float64Array(count);
  let sum = 0;
  for (let rank = 0; rank < count; rank += 1) {
    sum += 1 / (rank + 1) ** s;
    cdf[rank] = sum;
  }
  return () => {
    const target = Math.random() * sum;
    let low = 0;
    let high = count - 1;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((cdf[mid] as number) < target) low = mid + 1;
      else high = mid;
    }
    return low;
  };
}
