import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SLOT_COUNT, slotRanges } from "../../schema/placement.js";
import { replaceFile } from "./shard-files.js";
import { DataDirectoryError } from "./storage-errors.js";
import type { ShardPlacement } from "./shard.js";

export const MANIFEST_FILE = "manifest.json";
const FORMAT_VERSION = 1;

/** The node of a cluster that a data directory belongs to. */
export interface ClusterMember {
  cluster: string;
  node: string;
}

/** One shard of the manifest: its placement and its file, named by its number. */
export type ManifestEntry = ShardPlacement & { file: string };

/** The data directory's table of contents: which file holds which slot range. */
export interface Manifest {
  format: number;
  slotCount: number;
  /** Signs list cursors, so a forged or damaged cursor is refused; shared by every worker. */
  cursorSecret: string;
  /**
   * Set when the directory belongs to a node of a cluster. Its shards are then whichever the
   * cluster's map gave the node (any number, any ids, slot ranges that do not overlap);
   * without it, the shards cover every slot once, numbered from 0.
   */
  member?: ClusterMember;
  shards: ManifestEntry[];
}

export function newManifest(shardCount: number, member?: ClusterMember): Manifest {
  return {
    format: FORMAT_VERSION,
    slotCount: SLOT_COUNT,
    cursorSecret: randomBytes(32).toString("hex"),
    ...(member && { member }),
    shards: slotRanges(shardCount).map((slots, shard) => manifestEntry({ shard, slots })),
  };
}

export function shardFileName(shard: number): string {
  return `shard-${String(shard).padStart(3, "0")}.sqlite`;
}

export function manifestEntry({ shard, slots }: ShardPlacement): ManifestEntry {
  return { shard, slots: { from: slots.from, to: slots.to }, file: shardFileName(shard) };
}

export function readManifest(root: string): Manifest {
  const path = join(root, MANIFEST_FILE);
  return parseManifest(readFileSync(path, "utf8"), path);
}

/** Replaces the manifest atomically and durably, its shards in number order. */
export function writeManifest(root: string, manifest: Manifest): void {
  const shards = [...manifest.shards].sort((a, b) => a.shard - b.shard);
  replaceFile(join(root, MANIFEST_FILE), `${JSON.stringify({ ...manifest, shards }, null, 2)}\n`);
}

type Fail = (why: string) => never;

/**
 * Parses and checks a manifest. A single node's shards must cover every slot once, in order; a
 * cluster member's must have distinct numbers and slot ranges that do not overlap.
 */
export function parseManifest(text: string, path: string): Manifest {
  const fail: Fail = (why) => {
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
  if (!Array.isArray(manifest.shards)) return fail("no shards");
  if (manifest.member === undefined) checkSingleNodeShards(manifest.shards, fail);
  else {
    const { cluster, node } = (manifest.member ?? {}) as Partial<ClusterMember>;
    if (!isName(cluster) || !isName(node)) fail("member is not a {cluster, node} pair of names");
    checkMemberShards(manifest.shards, fail);
  }
  return manifest as Manifest;
}

function isSlot(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) < SLOT_COUNT;
}

function isName(value: unknown): value is string {
  return typeof value === "string" && value.length > 0;
}

function checkSingleNodeShards(shards: Partial<ManifestEntry>[], fail: Fail): void {
  if (shards.length === 0) fail("no shards");
  let nextSlot = 0;
  shards.forEach((entry, index) => {
    const { shard, slots, file } = entry ?? {};
    if (shard !== index) fail(`shard ${index} is listed as ${String(shard)}`);
    if (typeof file !== "string" || file !== shardFileName(index)) fail(`shard ${index} names file ${String(file)}`);
    if (!slots || slots.from !== nextSlot || !Number.isInteger(slots.to) || slots.to < slots.from) {
      fail(`shard ${index} does not start at slot ${nextSlot}`);
    }
    nextSlot = slots.to + 1;
  });
  if (nextSlot !== SLOT_COUNT) fail(`the shards end at slot ${nextSlot - 1}, not ${SLOT_COUNT - 1}`);
}

function checkMemberShards(shards: Partial<ManifestEntry>[], fail: Fail): void {
  const seen = new Set<number>();
  for (const [index, entry] of shards.entries()) {
    const { shard, slots, file } = entry ?? {};
    if (typeof shard !== "number" || !Number.isSafeInteger(shard) || shard < 0) {
      return fail(`entry ${index} has shard ${String(shard)}, not a shard number`);
    }
    if (seen.has(shard)) fail(`shard ${shard} is listed twice`);
    seen.add(shard);
    if (file !== shardFileName(shard)) fail(`shard ${shard} names file ${String(file)}`);
    const { from, to } = slots ?? {};
    if (!isSlot(from) || !isSlot(to) || to < from) {
      fail(`shard ${shard} has slots ${JSON.stringify(slots)}, not a range within 0-${SLOT_COUNT - 1}`);
    }
  }
  const bySlot = [...(shards as ManifestEntry[])].sort((a, b) => a.slots.from - b.slots.from);
  bySlot.forEach((entry, index) => {
    const next = bySlot[index + 1];
    if (next && next.slots.from <= entry.slots.to) {
      fail(`shards ${entry.shard} and ${next.shard} both hold slot ${next.slots.from}`);
    }
  });
}
