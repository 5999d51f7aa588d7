import { describe, expect, it } from "vitest";
import { terminalProgress } from "../../server/cli/progress.js";

/** A stream that records what is written to it, a terminal or not. */
function stream(isTTY: boolean): { written: string[]; stream: NodeJS.WriteStream } {
  const written: string[] = [];
  const fake = { isTTY, write: (text: string) => written.push(text) > 0 };
  return { written, stream: fake as unknown as NodeJS.WriteStream };
}

describe("progress of check and backup", () => {
  it("rewrites one line on a terminal, then clears it", () => {
    const { written, stream: tty } = stream(true);
    const progress = terminalProgress("check", tty);
    progress.update(0, 2);
    progress.update(1, 2);
    progress.update(2, 2);
    progress.end();
    expect(written).toEqual(["\r\x1b[2Kcheck 0/2 shards", "\r\x1b[2Kcheck 1/2 shards", "\r\x1b[2Kcheck 2/2 shards", "\r\x1b[2K"]);
  });

  it("writes nothing when stderr is not a terminal (a pipe, a log file)", () => {
    const { written, stream: pipe } = stream(false);
    const progress = terminalProgress("backup", pipe);
    progress.update(1, 8);
    progress.end();
    expect(written).toEqual([]);
  });

  it("clears nothing when nothing was shown", () => {
    const { written, stream: tty } = stream(true);
    terminalProgress("check", tty).end();
    expect(written).toEqual([]);
  });
});
