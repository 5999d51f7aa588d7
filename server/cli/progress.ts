/** Reports how far a command over several shards has got. */
export interface Progress {
  update(done: number, total: number): void;
  /** Clears the line, so the command's own output starts on a clean one. */
  end(): void;
}

/**
 * `check 3/8 shards` on stderr, rewritten in place, only when stderr is a terminal: piped or
 * redirected output (a script, a log file) stays exactly the command's result.
 */
export function terminalProgress(label: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { update: () => {}, end: () => {} };
  let shown = false;
  return {
    update: (done, total) => {
      stream.write(`\r\x1b[2K${label} ${done}/${total} shards`);
      shown = true;
    },
    end: () => {
      if (shown) stream.write("\r\x1b[2K");
    },
  };
}
