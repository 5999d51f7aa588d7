import { destination, pino, type Logger } from "pino";

/** The levels `APOSTATE_LOG_LEVEL` may name. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

const LOG_BUFFER_BYTES = 4096;
/** The longest a logged line waits in the buffer. */
const LOG_FLUSH_MS = 100;

/** `APOSTATE_LOG_LEVEL` is not one of {@link LOG_LEVELS}. */
export class LogLevelError extends Error {}

/**
 * JSON logs on stdout, one line per event, written asynchronously. Request lines name the
 * request, never its headers or body (see request-observer.ts); the redaction is a second guard
 * should a header object ever be logged.
 *
 * @example
 * const logger = createLogger("warn"); // only warnings and errors: no request lines
 */
export function createLogger(level = process.env.APOSTATE_LOG_LEVEL ?? "info"): Logger {
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new LogLevelError(`APOSTATE_LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, not ${JSON.stringify(level)}`);
  }
  /*
   * Buffered and asynchronous: lines collect until 4 KB (about twenty request lines) or the next
   * flush tick and go out in one write(2), off the event loop, instead of a write per request
   * line. pino flushes what is left when the process exits; a kill -9 can lose the last lines
   * (never a write).
   */
  const stream = destination({ dest: 1, sync: false, minLength: LOG_BUFFER_BYTES });
  setInterval(() => {
    try {
      stream.flush();
    } catch {
      // Destroyed on the way out, after pino's exit handler wrote what was left.
    }
  }, LOG_FLUSH_MS).unref();
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: ["req.headers.authorization", "headers.authorization", "authorization"],
    },
    stream,
  );
}
