import { destination, pino, type Logger } from "pino";

/** The levels `APOSTATE_LOG_LEVEL` may name. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** `APOSTATE_LOG_LEVEL` is not one of {@link LOG_LEVELS}. */
export class LogLevelError extends Error {}

/**
 * JSON logs on stdout, one line per event, written asynchronously. Request lines name the request, never its headers or
 * body (see request-observer.ts); the redaction is a second guard should a header object ever
 * be logged.
 *
 * @example
 * const logger = createLogger("warn"); // only warnings and errors: no request lines
 */
export function createLogger(level = process.env.APOSTATE_LOG_LEVEL ?? "info"): Logger {
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new LogLevelError(`APOSTATE_LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, not ${JSON.stringify(level)}`);
  }
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: ["req.headers.authorization", "headers.authorization", "authorization"],
    },
    /*
     * Asynchronous: lines that arrive while a write is in flight go out together in the next
     * one, instead of one write(2) per request line. pino flushes what is left when the process
     * exits; a kill -9 can lose the last lines, never a write.
     */
    destination({ dest: 1, sync: false }),
  );
}
