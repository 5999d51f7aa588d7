import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { SLOT_COUNT, slotOf } from "../../schema/placement.js";
import { MANIFEST_FILE, newManifest, parseManifest, type Manifest } from "./manifest.js";
import { Shard, type ShardOptions } from "./shard.js";
import { verifyShardFile } from "./shard-verification.js";
import { DataDirectoryError } from "./storage-errors.js";

export interface OpenOptions extends ShardOptions {
  /** Shard count for a new data directory; an existing one keeps its manifest's. */
  shardCount: number;
  /**
   * Verify every shard before opening it for writing (the primary does): what a crash or a
   * careless copy can have damaged, in a time that does not grow with the data.
   */
  verify: boolean;
}

/** Every shard of a data directory, open, with the slot → shard table precomputed. */
export class ShardSet {
  private readonly shardOfSlot: Uint16Array;

  constructor(
    readonly directory: string,
    readonly manifest: Manifest,
    readonly shards: readonly Shard[],
    /** The shards that were not closed cleanly last time (only known when opened with `verify`). */
    readonly uncleanShards: readonly number[] = [],
  ) {
    this.shardOfSlot = new Uint16Array(SLOT_COUNT);
    for (const shard of shards)
      this.shardOfSlot.fill(shard.placement.shard, shard.placement.slots.from, shard.placement.slots.to + 1);
  }

  shardFor(type: string, id: string): Shard {
    return this.shardAt(slotOf(type, id));
  }

  shardAt(slot: number): Shard {
    return this.shards[this.shardOfSlot[slot] ?? 0] as Shard;
  }

  close(): void {
    for (const shard of this.shards) shard.close();
  }
}

/**
 * Opens a data directory: absent or empty, it is initialised; with a manifest, every file must
 * match it; non-empty without a manifest, it is refused. Nothing existing is ever overwritten.
 */
export async function openDataDirectory(directory: string, options: OpenOptions): Promise<ShardSet> {
  const root = resolve(directory);
  const manifestPath = join(root, MANIFEST_FILE);
  if (!existsSync(manifestPath)) {
    if (existsSync(root) && readdirSync(root).length > 0) {
      throw new DataDirectoryError(`${root} is not empty and has no ${MANIFEST_FILE}: refusing to use it as a data directory`);
    }
    await initialise(root, options);
  }
  const manifest = parseManifest(readFileSync(manifestPath, "utf8"), manifestPath);
  assertFilesMatch(root, manifest);
  const uncleanShards = options.verify
    ? manifest.shards.filter(({ file }) => !verifyShardFile(join(root, file)).closedCleanly).map(({ shard }) => shard)
    : [];
  const shards: Shard[] = [];
  try {
    for (const entry of manifest.shards) {
      shards.push(await Shard.open(join(root, entry.file), entry, { ...options, create: false }));
    }
  } catch (error) {
    for (const shard of shards) shard.close();
    throw error;
  }
  return new ShardSet(root, manifest, shards, uncleanShards);
}

/*
 * A new data directory is built beside its final place and renamed into it (rename(2) may
 * replace an empty directory), so a crash half-way leaves no half-made store behind.
 */
async function initialise(root: string, options: OpenOptions): Promise<void> {
  mkdirSync(dirname(root), { recursive: true });
  const staging = `${root}.init-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging);
  const manifest = newManifest(options.shardCount);
  for (const entry of manifest.shards) {
    const shard = await Shard.open(join(staging, entry.file), entry, { ...options, create: true });
    shard.markClosedCleanly();
    shard.close();
  }
  writeFileSync(join(staging, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(staging, root);
}

const SHARD_FILE = /^shard-\d+\.sqlite$/;

function assertFilesMatch(root: string, manifest: Manifest): void {
  const listed = new Set(manifest.shards.map((entry) => entry.file));
  for (const file of listed) {
    if (!existsSync(join(root, file))) {
      throw new DataDirectoryError(`${join(root, file)} is listed in ${MANIFEST_FILE} but missing`);
    }
  }
  for (const file of readdirSync(root)) {
    if (SHARD_FILE.test(file) && !listed.has(file)) {
      throw new DataDirectoryError(`${join(root, file)} is not listed in ${MANIFEST_FILE}`);
    }
  }
}
