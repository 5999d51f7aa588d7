/**
 * What `apostate` exits with, so scripts can tell damaged data from a mistake on the command
 * line from a server that did not answer.
 */
export const EXIT_CODES = {
  ok: 0,
  /**
   * A check found a damaged shard, or a data directory cannot be read or served as it is; or a
   * process that `cluster up` started stopped by itself, or did not get ready.
   */
  damaged: 1,
  /** An unknown command or option, a bad value, a wrong directory, a missing or wrong token. */
  usage: 2,
  /** The server did not answer, or answered that it is unavailable (502, 503, 504). */
  unreachable: 3,
  /** The server refused the request (no such entity, a version mismatch, …), or a move waited for was aborted. */
  refused: 4,
} as const;

export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

/** The exit codes as `apostate --help` lists them. */
export const EXIT_CODES_HELP = `
Exit codes:
  0  success
  1  damaged data: a check found a damaged shard, or a data directory cannot be read or served;
     cluster up: a node or etcd stopped by itself
  2  bad usage: unknown command or option, bad value, wrong directory, missing or wrong token;
     cluster up: etcd not on PATH, a port taken
  3  unreachable: the server did not answer, or answered 502, 503 or 504
  4  refused: the server refused the request (e.g. no such entity, version mismatch);
     cluster move|split|rebalance --wait: a move was aborted`;

/** An HTTP status as the exit code of the command that got it. */
export function exitCodeOfStatus(status: number): ExitCode {
  if (status === 502 || status === 503 || status === 504) return EXIT_CODES.unreachable;
  if (status === 400 || status === 401 || status === 413 || status === 415) return EXIT_CODES.usage;
  return EXIT_CODES.refused;
}
