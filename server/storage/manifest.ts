import { randomBytes } from "node:crypto";
import { SLOT_COUNT, slotRanges } from "../../schema/placement.js";
import { DataDirectoryError } from "./storage-errors.js";
import type { ShardPlacement } from "./shard.js";

export const MANIFEST_FILE = "manifest.json";
const FORMAT_VERSION = 1;

/** The data directory's table of contents: which file holds which slot range. */
export interface Manifest {
  format: number;
  slotCount: number;
  /** Signs list cursors, so a forged or damaged cursor is refused; shared by every worker. */
  cursorSecret: string;
  shards: (ShardPlacement & { file: string })[];
}

export function newManifest(shardCount: number): Manifest {
  return {
    format: FORMAT_VERSION,
    slotCount: SLOT_COUNT,
    cursorSecret: randomBytes(32).toString("hex"),
    shards: slotRanges(shardCount).map((slots, shard) => ({ shard, slots, file: shardFileName(shard) })),
  };
}

function shardFileName(shard: number): string {
  return `shard-${String(shard).padStart(3, "0")}.sqlite`;
}

/** Parses and checks a manifest: the shards must cover every slot once, in order. */
export function parseManifest(text: string, path: string): Manifest {
  const fail = (why: string): never => {
    throw new DataDirectoryError(`${path} is not a valid apostate manifest: ${why}`);
  };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return fail((error as Error).message);
  }
  if (typeof value !== "object" || value === null) return fail("not a JSON object");
  const manifest = value as Partial<Manifest>;
  if (manifest.format !== FORMAT_VERSION) return fail(`format ${String(manifest.format)} is not ${FORMAT_VERSION}`);
  if (manifest.slotCount !== SLOT_COUNT) return fail(`slotCount ${String(manifest.slotCount)} is not ${SLOT_COUNT}`);
  if (typeof manifest.cursorSecret !== "string" || manifest.cursorSecret.length < 32) return fail("no cursorSecret");
  if (!Array.isArray(manifest.shards) || manifest.shards.length === 0) return fail("no shards");
  let nextSlot = 0;
  manifest.shards.forEach((entry, index) => {
    const { shard, slots, file } = entry ?? {};
    if (shard !== index) fail(`shard ${index} is listed as ${String(shard)}`);
    if (typeof file !== "string" || file !== shardFileName(index)) fail(`shard ${index} names file ${String(file)}`);
    if (!slots || slots.from !== nextSlot || !Number.isInteger(slots.to) || slots.to < slots.from) {
      fail(`shard ${index} does not start at slot ${nextSlot}`);
    }
    nextSlot = slots.to + 1;
  });
  if (nextSlot !== SLOT_COUNT) fail(`the shards end at slot ${nextSlot - 1}, not ${SLOT_COUNT - 1}`);
  return manifest as Manifest;
}
