import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs";
import { endianness } from "node:os";
import { DataDirectoryError } from "./storage-errors.js";

/*
 * SQLite's wal-index (the `-shm` file) begins with two copies of a 48-byte header that records
 * how many WAL frames are committed (`mxFrame`) and the page size; see "The WAL-Index Header" in
 * https://www.sqlite.org/walformat.html. A crash leaves the -shm file behind with that header.
 * SQLite trusts the WAL file alone and rebuilds the index from it, so a WAL that was deleted or
 * cut short while the server was down would silently drop committed writes. Comparing the two
 * before SQLite opens the shard turns that loss into a refusal to start.
 */
const HEADER_BYTES = 48;
const WAL_INDEX_VERSION = 3_007_000;
const WAL_HEADER_BYTES = 32;
const FRAME_HEADER_BYTES = 24;

/** Up to `length` bytes from the start of `file`. */
export function readPrefix(file: string, length: number): Buffer {
  const fd = openSync(file, "r");
  try {
    const buffer = Buffer.alloc(length);
    return buffer.subarray(0, readSync(fd, buffer, 0, length, 0));
  } finally {
    closeSync(fd);
  }
}

/**
 * Refuses a shard whose WAL is missing or shorter than its wal-index says it must be. Run it
 * only while no process has the shard open (at start-up, before anything opens it).
 *
 * @throws DataDirectoryError naming the WAL file.
 * @example
 * assertWalComplete("/var/lib/apostate/shard-000.sqlite");
 */
export function assertWalComplete(shardFile: string): void {
  const shm = `${shardFile}-shm`;
  const wal = `${shardFile}-wal`;
  if (!existsSync(shm)) return;
  const header = readPrefix(shm, 2 * HEADER_BYTES);
  // Copies that differ mean a writer died while updating them; SQLite then recovers from the
  // WAL alone, and the header says nothing reliable.
  if (header.length < 2 * HEADER_BYTES || !header.subarray(0, HEADER_BYTES).equals(header.subarray(HEADER_BYTES))) return;
  // The wal-index is in the machine's native byte order.
  const littleEndian = endianness() === "LE";
  const u32 = (offset: number) => (littleEndian ? header.readUInt32LE(offset) : header.readUInt32BE(offset));
  const u16 = (offset: number) => (littleEndian ? header.readUInt16LE(offset) : header.readUInt16BE(offset));
  const initialised = header[12] === 1;
  if (u32(0) !== WAL_INDEX_VERSION || !initialised) return;
  // A 64 KiB page does not fit in 16 bits; SQLite stores it as 1.
  const pageSize = u16(14) === 1 ? 65_536 : u16(14);
  const committedFrames = u32(16);
  if (committedFrames === 0) return;
  const needed = WAL_HEADER_BYTES + committedFrames * (FRAME_HEADER_BYTES + pageSize);
  const advice = `committed writes would be lost. Restore the WAL from a copy, or move ${shm} away to start without those writes`;
  if (!existsSync(wal)) {
    throw new DataDirectoryError(`${wal} is missing, but ${shm} records ${committedFrames} committed WAL frames: ${advice}`);
  }
  const size = statSync(wal).size;
  if (size < needed) {
    throw new DataDirectoryError(
      `${wal} is truncated: ${size} bytes, but ${shm} records ${committedFrames} committed frames (${needed} bytes): ${advice}`,
    );
  }
}
