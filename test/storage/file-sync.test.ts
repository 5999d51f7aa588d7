import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FileSync } from "../../server/storage/file-sync.js";
import { tempDir } from "../support/temp-dir.js";

const dir = tempDir();
afterAll(() => dir.remove());

/** An fsync that finishes when the test says so, counting the calls. */
function manualFsync() {
  const calls: { fd: number; finish: (error?: Error) => void }[] = [];
  const fsync = (fd: number) =>
    new Promise<void>((resolve, reject) => calls.push({ fd, finish: (error) => (error ? reject(error) : resolve()) }));
  return { calls, fsync };
}

function fileSync(fsync: (fd: number) => Promise<void>): FileSync {
  const path = join(dir.path, `wal-${Math.random()}`);
  writeFileSync(path, "frames");
  return new FileSync(path, fsync);
}

/** Lets pending promise callbacks (the open, the chained fsync) run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 10));

describe("FileSync: fsync off the event loop, shared by the callers that wait together", () => {
  it("answers a caller only after an fsync that began after its call", async () => {
    const { calls, fsync } = manualFsync();
    const sync = fileSync(fsync);
    const done: string[] = [];
    void sync.sync().then(() => done.push("first"));
    await settle();
    expect(calls).toHaveLength(1);
    // Asks while the first fsync runs: what it wrote may have missed that fsync.
    void sync.sync().then(() => done.push("second"));
    calls[0]!.finish();
    await settle();
    expect(done).toEqual(["first"]);
    expect(calls).toHaveLength(2);
    calls[1]!.finish();
    await settle();
    expect(done).toEqual(["first", "second"]);
  });

  it("runs one more fsync for all the callers that asked during one", async () => {
    const { calls, fsync } = manualFsync();
    const sync = fileSync(fsync);
    const first = sync.sync();
    await settle();
    const waiting = Array.from({ length: 50 }, () => sync.sync());
    calls[0]!.finish();
    await first;
    await settle();
    calls[1]!.finish();
    await Promise.all(waiting);
    expect(calls).toHaveLength(2);
    expect(new Set(calls.map((call) => call.fd)).size).toBe(1);
  });

  it("rejects the callers of a failed fsync, and the next call tries again", async () => {
    const { calls, fsync } = manualFsync();
    const sync = fileSync(fsync);
    const failing = sync.sync();
    await settle();
    calls[0]!.finish(new Error("EIO"));
    await expect(failing).rejects.toThrow("EIO");
    const retried = sync.sync();
    await settle();
    calls[1]!.finish();
    await expect(retried).resolves.toBeUndefined();
  });

  it("fails when the file does not exist, and works once it does", async () => {
    const path = join(dir.path, "later-wal");
    const sync = new FileSync(path);
    await expect(sync.sync()).rejects.toMatchObject({ code: "ENOENT" });
    writeFileSync(path, "frames");
    await expect(sync.sync()).resolves.toBeUndefined();
    await sync.close();
  });
});
