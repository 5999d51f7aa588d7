import { close, fsync, open } from "node:fs";
import { promisify } from "node:util";

const openAsync = promisify(open);
const fsyncAsync = promisify(fsync);
const closeAsync = promisify(close);

/** Flushes a file descriptor's data to stable storage. */
export type Fsync = (fd: number) => Promise<void>;

/**
 * fsync of one file, off the event loop (libuv's thread pool) and shared by every caller that
 * asks while it runs. `sync()` resolves once an fsync that began after the call has finished,
 * so everything written to the file before the call is on disk; callers who ask while an fsync
 * runs share the one after it.
 *
 * @example
 * const wal = new FileSync(`${file}-wal`);
 * db.prepare("commit").run(); // synchronous=NORMAL: written, not yet synced
 * await wal.sync();           // now it survives power loss
 */
export class FileSync {
  private fd: Promise<number> | undefined;
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  constructor(
    private readonly path: string,
    private readonly fsyncFd: Fsync = fsyncAsync,
  ) {}

  sync(): Promise<void> {
    if (this.queued) return this.queued;
    if (!this.running) return this.start();
    // The running fsync may have begun before the caller's write: it needs the next one.
    const after = () => {
      this.queued = undefined;
      return this.start();
    };
    this.queued = this.running.then(after, after);
    return this.queued;
  }

  /** Closes the descriptor once the fsyncs asked for so far have finished. */
  async close(): Promise<void> {
    await Promise.allSettled([this.queued, this.running]);
    const fd = this.fd;
    this.fd = undefined;
    if (fd) await closeAsync(await fd);
  }

  private start(): Promise<void> {
    // Opened on first use: SQLite creates the -wal file with the first transaction. Read-only
    // is enough, fsync flushes the file whatever the descriptor's mode.
    this.fd ??= openAsync(this.path, "r").catch((error: unknown) => {
      this.fd = undefined;
      throw error;
    });
    const running = this.fd.then((fd) => this.fsyncFd(fd));
    this.running = running;
    const clear = () => {
      if (this.running === running) this.running = undefined;
    };
    running.then(clear, clear);
    return running;
  }
}
