import bytes from "bytes";
import type { BackupInfo } from "../admin/backups.js";
import type { CheckResult, ShardInfo } from "../admin/shard-admin.js";

const COLUMNS = ["SHARD", "SLOTS", "ENTITIES", "FILE", "WAL", "SEQUENCE", "IDEMPOTENCY", "LAST WRITE"] as const;

/**
 * The shards as an aligned text table, with a total line.
 *
 * @example
 * SHARD  SLOTS     ENTITIES  FILE   WAL  SEQUENCE  IDEMPOTENCY  LAST WRITE
 * 0      0-511     12        44KB   0B   15        3            2026-11-26T06:16:41.541Z
 */
export function shardTable(shards: ShardInfo[]): string {
  const size = (value: number) => bytes.format(value, { unitSeparator: "" }) ?? String(value);
  const rows = shards.map((info) => [
    String(info.shard),
    `${info.slots.from}-${info.slots.to}`,
    String(info.entities),
    size(info.fileBytes),
    size(info.walBytes),
    String(info.sequence),
    String(info.idempotencyRecords),
    info.lastWriteAt ?? "-",
  ]);
  const sum = (pick: (info: ShardInfo) => number) => shards.reduce((total, info) => total + pick(info), 0);
  rows.push([
    "total",
    "",
    String(sum((info) => info.entities)),
    size(sum((info) => info.fileBytes)),
    size(sum((info) => info.walBytes)),
    "",
    String(sum((info) => info.idempotencyRecords)),
    "",
  ]);
  return alignedTable([...COLUMNS], rows);
}

/** A header and rows as text columns two spaces apart, each as wide as its widest cell. */
export function alignedTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const table = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...table.map((row) => (row[column] ?? "").length)));
  return table
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** One line per shard: ok, or DAMAGED with SQLite's complaints indented below. */
export function checkReport(results: CheckResult[]): string {
  return results
    .map(({ shard, ok, messages }) =>
      ok ? `shard ${shard}: ok` : [`shard ${shard}: DAMAGED`, ...messages.map((message) => `  ${message}`)].join("\n"),
    )
    .join("\n");
}

/** One line per backup: the file, its size and the sequence it holds. */
export function backupReport(backups: BackupInfo[]): string {
  return backups
    .map(
      ({ shard, file, bytes: size, sequence }) => `shard ${shard}: backups/${file} (${bytes.format(size)}, sequence ${sequence})`,
    )
    .join("\n");
}
