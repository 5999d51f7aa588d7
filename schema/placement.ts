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
  hash = fnv1aUtf8(hash, type);
  hash = Math.imul(hash, FNV_PRIME) >>> 0; // the 0x00 separator: xor with 0 is a no-op
  hash = fnv1aUtf8(hash, id);
  return hash % SLOT_COUNT;
}

/**
 * FNV-1a over the UTF-8 bytes of `text`, encoded on the fly: the typed client computes slots
 * too, so no Buffer (Node's alone); and no TextEncoder, whose allocation per call made this
 * several times slower on the request path. A lone surrogate counts as U+FFFD, as in every
 * UTF-8 encoder.
 */
function fnv1aUtf8(start: number, text: string): number {
  let hash = start;
  for (let i = 0; i < text.length; i += 1) {
    let code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdfff) {
      const low = text.charCodeAt(i + 1);
      if (code <= 0xdbff && low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        i += 1;
      } else {
        code = 0xfffd;
      }
    }
    if (code < 0x80) {
      hash = mix(hash, code);
    } else if (code < 0x800) {
      hash = mix(mix(hash, 0xc0 | (code >> 6)), 0x80 | (code & 0x3f));
    } else if (code < 0x10000) {
      hash = mix(mix(mix(hash, 0xe0 | (code >> 12)), 0x80 | ((code >> 6) & 0x3f)), 0x80 | (code & 0x3f));
    } else {
      hash = mix(mix(hash, 0xf0 | (code >> 18)), 0x80 | ((code >> 12) & 0x3f));
      hash = mix(mix(hash, 0x80 | ((code >> 6) & 0x3f)), 0x80 | (code & 0x3f));
    }
  }
  return hash;
}

function mix(hash: number, byte: number): number {
  return Math.imul(hash ^ byte, FNV_PRIME) >>> 0;
}

/** The inclusive slot range of each of `shardCount` shards, as even as the slot space allows. */
export function slotRanges(shardCount: number): { from: number; to: number }[] {
  return Array.from({ length: shardCount }, (_, shard) => ({
    from: Math.floor((shard * SLOT_COUNT) / shardCount),
    to: Math.floor(((shard + 1) * SLOT_COUNT) / shardCount) - 1,
  }));
}
