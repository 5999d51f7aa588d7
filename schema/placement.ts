/**
 * Where a key lives. The slot space never changes, so a key never rehashes: shards own
 * contiguous slot ranges and can be split or moved by range.
 *
 * `slot = FNV-1a-32(utf8(type) ‖ 0x00 ‖ utf8(id)) mod 4096`. The NUL byte cannot occur in a
 * type or an id, so no two keys share an input.
 *
 * @example
 * slotOf("account", "alice") // a number in [0, 4095], the same in every process and release
 */
export const SLOT_COUNT = 4096;

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export function slotOf(type: string, id: string): number {
  let hash = FNV_OFFSET_BASIS;
  hash = fnv1a(hash, Buffer.from(type, "utf8"));
  hash = Math.imul(hash, FNV_PRIME) >>> 0; // the 0x00 separator: xor with 0 is a no-op
  hash = fnv1a(hash, Buffer.from(id, "utf8"));
  return hash % SLOT_COUNT;
}

function fnv1a(start: number, bytes: Uint8Array): number {
  let hash = start;
  for (const byte of bytes) {
    hash = Math.imul(hash ^ byte, FNV_PRIME) >>> 0;
  }
  return hash;
}

/** The inclusive slot range of each of `shardCount` shards, as even as the slot space allows. */
export function slotRanges(shardCount: number): { from: number; to: number }[] {
  return Array.from({ length: shardCount }, (_, shard) => ({
    from: Math.floor((shard * SLOT_COUNT) / shardCount),
    to: Math.floor(((shard + 1) * SLOT_COUNT) / shardCount) - 1,
  }));
}
