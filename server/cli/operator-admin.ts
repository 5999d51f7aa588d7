import type { BackupInfo } from "../admin/backups.js";
import type { CheckResult, ShardInfo } from "../admin/shard-admin.js";
import type { ExitCode } from "./exit-codes.js";

/**
 * What the operator commands (`apostate shards|check|backup`) need, whether they talk to a
 * running server's admin API or read a data directory that no server holds.
 */
export interface OperatorAdmin {
  /** Where the figures come from, for messages: a URL or a directory. */
  readonly source: string;
  /** The shard numbers, without reading the shards (a damaged one may not be readable). */
  shardNumbers(): Promise<number[]>;
  shards(): Promise<ShardInfo[]>;
  check(shard: number): Promise<CheckResult>;
  backup(shard: number): Promise<BackupInfo>;
  close(): void;
}

/** A failure the operator can act on; the CLI prints its message and exits with `exitCode`. */
export class OperatorError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
  }
}
