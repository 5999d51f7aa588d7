import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import Database from "better-sqlite3";
import { SLOT_COUNT, slotOf } from "../../schema/placement.js";
import { removeShardFiles, syncPath } from "./shard-files.js";
import {
  MANIFEST_FILE,
  manifestEntry,
  newManifest,
  readManifest,
  shardFileName,
  writeManifest,
  type ClusterMember,
  type Manifest,
  type ManifestEntry,
} from "./manifest.js";
import { isWithin, Shard, type ShardOptions, type ShardPlacement, type SlotRange, type WriteGuard } from "./shard.js";
import { verifyShardFile } from "./shard-verification.js";
import { fenceOf, type ShardFence } from "./shard-fence.js";
import { DataDirectoryError, ShardNotHereError } from "./storage-errors.js";

export interface OpenOptions extends ShardOptions {
  /**
   * Shard count for a new data directory; an existing one keeps its manifest's. 0 (a node
   * that joins a cluster empty) only with `member`.
   */
  shardCount: number;
  /**
   * Verify every shard before opening it for writing (the primary does): what a crash or a
   * careless copy can have damaged, in a time that does not grow with the data. Under `power`
   * durability each verified shard's WAL is then synced into its file (Shard.makeWalDurable).
   */
  verify: boolean;
  /**
   * The cluster node the directory serves. A new directory records it; a single node's
   * directory is adopted (its manifest names the member from then on, shards and all); a
   * directory of another member, or a member's directory opened without it, is refused.
   */
  member?: ClusterMember | undefined;
}

/** Where a copy of a shard is filled (snapshot, then changes) before it is installed. */
const INCOMING_FOLDER = "incoming";

/** A shard as the set holds it, with the inode it was opened at, to notice a file replaced since. */
interface HeldShard {
  shard: Shard;
  inode: number;
}

/**
 * The shards of a data directory, open, with the slot → shard table precomputed. A single
 * node's set never changes. A cluster member's changes as shards move: every change is
 * recorded in the manifest first (written atomically), which is what a restart trusts, and
 * the other processes of the node follow with {@link ShardSet.reload}. Changes run one at a
 * time, in the order they were asked for.
 */
export class ShardSet {
  /** The shards, in slot order. */
  private ordered: Shard[] = [];
  /** Each slot's shard, as its position in `ordered` + 1; 0 when no shard here holds the slot. */
  private shardOfSlot = new Uint16Array(SLOT_COUNT);
  private changes: Promise<unknown> = Promise.resolve();

  constructor(
    readonly directory: string,
    private current: Manifest,
    private held: Map<number, HeldShard>,
    private readonly options: ShardOptions,
    /** The shards that were not closed cleanly last time (only known when opened with `verify`). */
    readonly uncleanShards: readonly number[] = [],
  ) {
    this.index();
  }

  get manifest(): Manifest {
    return this.current;
  }

  /** Every shard held here, in slot order. */
  get shards(): readonly Shard[] {
    return this.ordered;
  }

  shardFor(type: string, id: string): Shard {
    return this.shardAt(slotOf(type, id));
  }

  /** The shard that holds `slot`; ShardNotHereError when none here does. */
  shardAt(slot: number): Shard {
    const position = this.shardOfSlot[slot];
    if (!position) throw new ShardNotHereError(`no shard of this node holds slot ${slot}`);
    return this.ordered[position - 1] as Shard;
  }

  get(shard: number): Shard | undefined {
    return this.held.get(shard)?.shard;
  }

  /** Sets or clears the write guard of every shard, and of every shard opened from now on. */
  setGuard(guard: WriteGuard | undefined): void {
    this.options.guard = guard;
    for (const { shard } of this.held.values()) shard.setGuard(guard);
  }

  /** `<directory>/incoming/shard-NNN.sqlite`, where a copy for shard `shard` is filled (the folder is created). */
  incomingFile(shard: number): string {
    const folder = join(this.directory, INCOMING_FOLDER);
    mkdirSync(folder, { recursive: true });
    return join(folder, shardFileName(shard));
  }

  /**
   * Opens the copy in {@link ShardSet.incomingFile} as the shard it was copied from, to apply
   * changes to it and digest it; it is not part of the set. Close it before installing it.
   */
  openIncoming(shard: number): Promise<Shard> {
    return Shard.openFile(this.incomingFile(shard), this.copyOptions());
  }

  /**
   * Makes the (closed) copy in `incomingFile` shard `entry.shard` of this node: the copy takes
   * the entry's identity, keeps only the rows of its slots (a split's copy was taken from the
   * whole source), gets `epoch` and is not frozen; it is then moved into the directory, named
   * in the manifest and opened. The manifest names the file only once it is complete in place:
   * a crash before that leaves the manifest as it was.
   *
   * @example
   * const file = shards.incomingFile(9);
   * await source.snapshot(file); // then copy.applyChanges(…) until caught up, and close the copy
   * await shards.install({ shard: 9, slots: { from: 256, to: 511 } }, file, epoch);
   */
  install(entry: ShardPlacement, incomingFile: string, epoch: number): Promise<Shard> {
    return this.serially(async () => {
      this.assertMember();
      this.assertPlaceable(entry);
      if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`epoch ${epoch} is not a non-negative integer`);
      const copy = await Shard.openFile(incomingFile, this.copyOptions());
      try {
        copy.reidentify(entry, { epoch, frozen: false, followers: [] });
        copy.markClosedCleanly();
      } finally {
        copy.close();
      }
      sealCopy(incomingFile);
      const file = join(this.directory, shardFileName(entry.shard));
      // A leftover of an interrupted drop or install under this name: SQLite would replay a
      // stale WAL into the new file.
      removeShardFiles(file);
      renameSync(incomingFile, file);
      syncPath(this.directory);
      const listed = manifestEntry(entry);
      this.persist({ ...this.current, shards: [...this.current.shards, listed] });
      const held = await this.open(listed);
      this.held.set(entry.shard, held);
      this.index();
      return held.shard;
    });
  }

  /**
   * Finishes an install that a crash cut between renaming the copy into the directory and naming
   * it in the manifest: the shard's file is there, unlisted, and the copy is gone from
   * `incoming/`. A file at `epoch` and not frozen is that copy (install stamps the epoch before
   * the rename), and goes back to `incoming/` for the install to be done again; true then. Any
   * other unlisted file of the shard is one a drop left behind (the manifest lets it go first),
   * and is deleted.
   */
  reclaimInterruptedInstall(shard: number, epoch: number): Promise<boolean> {
    return this.serially(async () => {
      this.assertMember();
      const file = join(this.directory, shardFileName(shard));
      if (this.held.has(shard) || !existsSync(file)) return false;
      const fence = fenceOfFile(file);
      if (fence.epoch !== epoch || fence.frozen) {
        removeShardFiles(file);
        syncPath(this.directory);
        return false;
      }
      renameSync(file, this.incomingFile(shard));
      syncPath(this.directory);
      return true;
    });
  }

  /**
   * Narrows a shard to `slots` (the source of a split keeps the lower half): the manifest
   * first, then the file, which deletes the rows outside. A restart after a crash in between
   * finishes the change from the manifest.
   */
  reshape(shard: number, slots: SlotRange): Promise<void> {
    return this.serially(async () => {
      this.assertMember();
      const found = this.require(shard);
      if (!isWithin(slots, found.placement.slots)) {
        throw new RangeError(
          `shard ${shard} holds slots ${found.placement.slots.from}-${found.placement.slots.to}, which do not hold ${slots.from}-${slots.to}`,
        );
      }
      const placement = { shard, slots: { from: slots.from, to: slots.to } };
      this.persist({
        ...this.current,
        shards: this.current.shards.map((entry) => (entry.shard === shard ? manifestEntry(placement) : entry)),
      });
      try {
        found.reidentify(placement);
      } finally {
        this.index();
      }
    });
  }

  /** Takes a shard out of the manifest, closes it and deletes its files. */
  drop(shard: number): Promise<void> {
    return this.serially(async () => {
      this.assertMember();
      const found = this.require(shard);
      this.persist({ ...this.current, shards: this.current.shards.filter((entry) => entry.shard !== shard) });
      this.held.delete(shard);
      this.index();
      found.close();
      removeShardFiles(found.file);
      syncPath(this.directory);
    });
  }

  /**
   * Catches up with changes that another process of the node made: re-reads the manifest,
   * opens the shards it added, closes those it removed and narrows those it narrowed. A shard
   * whose file was replaced (dropped and installed again) is opened anew.
   */
  reload(): Promise<void> {
    return this.serially(async () => {
      const manifest = readManifest(this.directory);
      assertMember(manifest, this.current.member, join(this.directory, MANIFEST_FILE));
      const next = new Map<number, HeldShard>();
      const narrowed: ShardPlacement[] = [];
      try {
        for (const entry of manifest.shards) {
          const held = this.held.get(entry.shard);
          if (
            held &&
            held.inode === inodeOf(join(this.directory, entry.file)) &&
            isWithin(entry.slots, held.shard.placement.slots)
          ) {
            next.set(entry.shard, held);
            if (!isSameRange(entry.slots, held.shard.placement.slots)) narrowed.push(entry);
          } else {
            next.set(entry.shard, await this.open(entry));
          }
        }
      } catch (error) {
        for (const [number, { shard }] of next) if (this.held.get(number)?.shard !== shard) shard.close();
        throw error;
      }
      const retired = [...this.held.values()].filter(({ shard }) => next.get(shard.placement.shard)?.shard !== shard);
      this.current = manifest;
      this.held = next;
      try {
        // The process that changed the manifest narrows the file too; whichever comes first
        // does the work, the other finds nothing left to delete.
        for (const placement of narrowed) this.require(placement.shard).reidentify(placement);
      } finally {
        this.index();
        for (const { shard } of retired) shard.close();
      }
    });
  }

  close(): void {
    for (const { shard } of this.held.values()) shard.close();
  }

  private index(): void {
    this.ordered = [...this.held.values()]
      .map(({ shard }) => shard)
      .sort((a, b) => a.placement.slots.from - b.placement.slots.from);
    const table = new Uint16Array(SLOT_COUNT);
    this.ordered.forEach((shard, position) => table.fill(position + 1, shard.placement.slots.from, shard.placement.slots.to + 1));
    this.shardOfSlot = table;
  }

  private open(entry: ManifestEntry): Promise<HeldShard> {
    return openHeldShard(this.directory, entry, this.options, this.current.member !== undefined);
  }

  /** A copy is no shard of the node's yet: no guard, no followers. */
  private copyOptions(): ShardOptions {
    return { durability: this.options.durability, busyTimeoutMs: this.options.busyTimeoutMs };
  }

  private persist(manifest: Manifest): void {
    const next = { ...manifest, shards: [...manifest.shards].sort((a, b) => a.shard - b.shard) };
    writeManifest(this.directory, next);
    this.current = next;
  }

  private serially<T>(change: () => Promise<T>): Promise<T> {
    const run = this.changes.then(change);
    this.changes = run.catch(() => undefined);
    return run;
  }

  private require(shard: number): Shard {
    const found = this.get(shard);
    if (!found) throw new RangeError(`this node holds no shard ${shard}`);
    return found;
  }

  private assertMember(): void {
    if (!this.current.member) throw new DataDirectoryError(`${this.directory} is a single node's: its shards never change`);
  }

  private assertPlaceable({ shard, slots }: ShardPlacement): void {
    if (!Number.isSafeInteger(shard) || shard < 0) throw new RangeError(`${shard} is not a shard number`);
    if (this.held.has(shard)) throw new RangeError(`this node holds shard ${shard} already`);
    if (!isWithin(slots, { from: 0, to: SLOT_COUNT - 1 })) {
      throw new RangeError(`slots ${slots.from}-${slots.to} are not a range within 0-${SLOT_COUNT - 1}`);
    }
    const overlapping = this.ordered.find(
      ({ placement }) => placement.slots.from <= slots.to && slots.from <= placement.slots.to,
    );
    if (overlapping) {
      const { shard: other, slots: held } = overlapping.placement;
      throw new RangeError(`slots ${slots.from}-${slots.to} overlap shard ${other}'s, ${held.from}-${held.to}`);
    }
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
  const found = readManifest(root);
  assertMember(found, options.member, manifestPath);
  assertFilesMatch(root, found);
  const uncleanShards = options.verify
    ? found.shards.filter(({ file }) => !verifyShardFile(join(root, file)).closedCleanly).map(({ shard }) => shard)
    : [];
  const manifest = options.member && !found.member ? adopt(root, found, options.member) : found;
  const shardOptions: ShardOptions = {
    durability: options.durability,
    busyTimeoutMs: options.busyTimeoutMs,
    guard: options.guard,
    ship: options.ship,
    onWalSyncFailure: options.onWalSyncFailure,
  };
  const held = new Map<number, HeldShard>();
  try {
    for (const entry of manifest.shards) {
      held.set(entry.shard, await openHeldShard(root, entry, shardOptions, manifest.member !== undefined));
    }
    if (options.verify && options.durability === "power") for (const { shard } of held.values()) shard.makeWalDurable();
  } catch (error) {
    for (const { shard } of held.values()) shard.close();
    throw error;
  }
  return new ShardSet(root, manifest, held, shardOptions, uncleanShards);
}

/*
 * A new data directory is built beside its final place and renamed into it (rename(2) may
 * replace an empty directory), so a crash half-way leaves no half-made store behind.
 */
async function initialise(root: string, options: OpenOptions): Promise<void> {
  const fewest = options.member ? 0 : 1;
  if (!Number.isInteger(options.shardCount) || options.shardCount < fewest || options.shardCount > SLOT_COUNT) {
    throw new RangeError(`a new data directory needs ${fewest}-${SLOT_COUNT} shards, not ${options.shardCount}`);
  }
  mkdirSync(dirname(root), { recursive: true });
  const staging = `${root}.init-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging);
  const manifest = newManifest(options.shardCount, options.member);
  for (const entry of manifest.shards) {
    const shard = await Shard.open(join(staging, entry.file), entry, {
      durability: options.durability,
      busyTimeoutMs: options.busyTimeoutMs,
      create: true,
      member: options.member !== undefined,
    });
    shard.markClosedCleanly();
    shard.close();
  }
  writeManifest(staging, manifest);
  renameSync(staging, root);
}

/** A cluster member's directory serves only that member; a single node's may be adopted by one. */
function assertMember(manifest: Manifest, member: ClusterMember | undefined, path: string): void {
  const owner = manifest.member;
  if (!owner) return;
  const name = ({ node, cluster }: ClusterMember) => `node ${node} of cluster ${cluster}`;
  if (!member) throw new DataDirectoryError(`${path} belongs to ${name(owner)}: it can only be served as that cluster member`);
  if (owner.node !== member.node || owner.cluster !== member.cluster) {
    throw new DataDirectoryError(`${path} belongs to ${name(owner)}, not to ${name(member)}`);
  }
}

/** A single node's directory joins a cluster as the member's, shards and all. */
function adopt(root: string, manifest: Manifest, member: ClusterMember): Manifest {
  const adopted = { ...manifest, member: { cluster: member.cluster, node: member.node } };
  writeManifest(root, adopted);
  return adopted;
}

async function openHeldShard(root: string, entry: ManifestEntry, options: ShardOptions, member: boolean): Promise<HeldShard> {
  const file = join(root, entry.file);
  // Read before opening: a file replaced in between is then opened anew by the next reload.
  const inode = inodeOf(file);
  const shard = await Shard.open(file, entry, { ...options, create: false, member });
  return { shard, inode };
}

function inodeOf(file: string): number {
  return statSync(file, { throwIfNoEntry: false })?.ino ?? -1;
}

function isSameRange(a: SlotRange, b: SlotRange): boolean {
  return a.from === b.from && a.to === b.to;
}

const SHARD_FILE = /^shard-\d+\.sqlite$/;

/*
 * Every listed file must be there. A single node's directory holds no other shard file; a
 * cluster member's may: an install or a drop interrupted between the file and the manifest
 * leaves one the manifest does not name, which the next install under that name replaces.
 */
function assertFilesMatch(root: string, manifest: Manifest): void {
  const listed = new Set(manifest.shards.map((entry) => entry.file));
  for (const file of listed) {
    if (!existsSync(join(root, file))) {
      throw new DataDirectoryError(`${join(root, file)} is listed in ${MANIFEST_FILE} but missing`);
    }
  }
  if (manifest.member) return;
  for (const file of readdirSync(root)) {
    if (SHARD_FILE.test(file) && !listed.has(file)) {
      throw new DataDirectoryError(`${join(root, file)} is not listed in ${MANIFEST_FILE}`);
    }
  }
}

/**
 * Turns a filled copy into one self-contained file, synced, ready to be renamed: its WAL is
 * checkpointed into it and removed. Switching out of WAL mode needs the only connection to the
 * file, so a copy still open elsewhere is refused rather than renamed away from its WAL.
 */
function sealCopy(file: string): void {
  // No wait for a lock: the copy must have no other connection, and SQLite's wait would stop the event loop.
  const db = new Database(file, { fileMustExist: true, timeout: 0 });
  try {
    const mode = db.pragma("journal_mode = DELETE", { simple: true });
    if (mode !== "delete") throw new Error(`its journal mode stayed ${String(mode)}`);
  } catch (error) {
    throw new DataDirectoryError(`cannot install ${file}: ${(error as Error).message} (is the copy still open?)`, {
      cause: error,
    });
  } finally {
    db.close();
  }
  syncPath(file);
}

/** The fence a closed shard file records, read without opening it as a shard. */
function fenceOfFile(file: string): ShardFence {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return fenceOf(db.prepare("select epoch, frozen, followers from shard_state").get() as Parameters<typeof fenceOf>[0]);
  } finally {
    db.close();
  }
}
