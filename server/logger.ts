import { pino, type Logger } from "pino";

/** JSON logs on stdout. Tokens and entity bodies are never logged. */
export function createLogger(): Logger {
  return pino({
    level: process.env.APOSTATE_LOG_LEVEL ?? "info",
    base: { pid: process.pid },
    redact: ["req.headers.authorization", "headers.authorization"],
  });
}
