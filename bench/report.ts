import type { Measurement } from "./load.js";
import type { PreloadResult } from "./preload.js";

export interface Row extends Measurement {
  name: string;
  label: string;
  /** req/s as a share of the express baseline. */
  ratio: number | null;
  /** The issue's minimum for `ratio`, when it sets one. */
  target?: number;
  /** The express baseline measured just before and after this row (their mean), which `ratio` and the p99 bound use. */
  paired?: Measurement;
  /** req/s as a share of the limit baseline serving the same requests. */
  limitRatio: number | null;
  /** The issue's minimum for `limitRatio`, when it sets one. */
  limitTarget?: number;
  /** The limit baseline measured just before and after this row (their mean). */
  pairedLimit?: Measurement;
}

export interface ReportContext {
  express: Measurement | undefined;
  /** Peak RSS of each worker, in bytes, by preloaded entity count. */
  rss: Record<string, number[]>;
  disk: Record<string, PreloadResult>;
  settings: { entities: number; workers: number; connections: number; seconds: number; warmupSeconds: number };
  machine: string;
}

/** The issue's p99 bound: at most this many times the paired baseline's p99. */
const P99_FACTOR = 4;
const POWER_PUT_SHARE = 0.7;
const LARGE_GET_SHARE = 0.8;
/** The issue's bound on each worker's peak resident memory, set for 1,000,000 entities. */
const RSS_LIMIT_MB = 150;

const fixed = (value: number, digits: number) => value.toFixed(digits);
const mb = (bytes: number) => `${fixed(bytes / 1024 / 1024, 0)} MB`;

/** Target checks that compare one scenario with another rather than with the baseline. */
function relativeTargets(rows: Row[]): Map<string, string> {
  const byName = new Map(rows.map((row) => [row.name, row]));
  const checks = new Map<string, string>();
  const compare = (name: string, base: string, share?: number) => {
    const row = byName.get(name);
    const other = byName.get(base);
    if (!row || !other) return;
    // Each against its own paired baseline when there is one, so drift between them cancels.
    const ratio =
      row.ratio !== null && other.ratio !== null ? row.ratio / other.ratio : row.requestsPerSecond / other.requestsPerSecond;
    checks.set(
      name,
      share === undefined
        ? `${fixed(ratio, 2)} × ${base}`
        : `≥ ${share} × ${base}: ${fixed(ratio, 2)} ${ratio >= share ? "met" : "MISSED"}`,
    );
  };
  compare("put-power", "put", POWER_PUT_SHARE);
  compare("get-1000000", "get-10000", LARGE_GET_SHARE);
  compare("get-logged", "get");
  compare("get-zipf-logged", "get-zipf");
  compare("get-1w", "get");
  compare("put-1w", "put");
  return checks;
}

/** A row's req/s share of a baseline against its target, and its p99 against the baseline's. */
function targetText(row: Row, ratio: number | null, target: number | undefined, baseline: Measurement | undefined): string {
  if (target === undefined || ratio === null || !baseline) return "";
  const throughput = ratio >= target;
  const p99 = row.p99Ms <= P99_FACTOR * baseline.p99Ms;
  return `≥ ${target}, p99 ≤ ${P99_FACTOR}×: ${throughput && p99 ? "met" : `MISSED${throughput ? " (p99)" : p99 ? "" : " (both)"}`}`;
}

/** The lines of a Markdown table. */
export function markdownTable(header: string[], body: string[][]): string[] {
  return [header, header.map(() => "---"), ...body].map((cells) => `| ${cells.join(" | ")} |`);
}

/** The run as a Markdown table plus the scaling figures, ready to paste into the README. */
export function formatTable(rows: Row[], context: ReportContext): string {
  const relative = relativeTargets(rows);
  const header = [
    "scenario",
    "req/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "express req/s, p99 ms",
    "× express",
    "target",
    "limit req/s, p99 ms, CPU µs/req",
    "× limit",
    "limit target",
    "CPU µs/req",
  ];
  const body = rows.map((row) => [
    row.label,
    fixed(row.requestsPerSecond, 0),
    fixed(row.p50Ms, 1),
    fixed(row.p99Ms, 1),
    String(row.errors),
    row.paired ? `${fixed(row.paired.requestsPerSecond, 0)}, ${fixed(row.paired.p99Ms, 1)}` : "",
    row.ratio === null ? "" : fixed(row.ratio, 2),
    relative.get(row.name) ?? targetText(row, row.ratio, row.target, row.paired ?? context.express),
    row.pairedLimit
      ? `${fixed(row.pairedLimit.requestsPerSecond, 0)}, ${fixed(row.pairedLimit.p99Ms, 1)}, ${
          row.pairedLimit.cpuMicrosPerRequest === null ? "?" : fixed(row.pairedLimit.cpuMicrosPerRequest, 0)
        }`
      : "",
    row.limitRatio === null ? "" : fixed(row.limitRatio, 2),
    targetText(row, row.limitRatio, row.limitTarget, row.pairedLimit),
    row.cpuMicrosPerRequest === null ? "" : fixed(row.cpuMicrosPerRequest, 0),
  ]);
  const lines = markdownTable(header, body);
  const { settings } = context;
  lines.push(
    "",
    `${context.machine}; ${settings.workers} workers, ${settings.connections} connections, ` +
      `${settings.seconds} s per scenario after ${settings.warmupSeconds} s warm-up, ${settings.entities.toLocaleString("en")} entities.`,
    "`× express` compares each scenario with the mean of the express baseline measured just before and just after it (the `express` column), " +
      "and so does the p99 bound; rows compared with another row compare those ratios. " +
      "`× limit` compares it in the same way with the limit baseline (bench/limit-server.ts: the same requests, URLs and SQL " +
      "on node:http and better-sqlite3 with nothing else, each worker on its own copy of the data, so no write waits for a lock; " +
      `it serves the ${context.settings.entities.toLocaleString("en")}-entity data, or the row's own count of entities, under \`--durability process\`).`,
  );
  for (const [count, workers] of Object.entries(context.rss)) {
    if (workers.length === 0) continue;
    const peak = Math.max(...workers);
    lines.push(
      `Peak RSS per worker at ${Number(count).toLocaleString("en")} entities: ${workers.map(mb).join(", ")}` +
        ` (≤ ${RSS_LIMIT_MB} MB: ${peak <= RSS_LIMIT_MB * 1024 * 1024 ? "met" : "MISSED"}).`,
    );
  }
  for (const [count, disk] of Object.entries(context.disk)) {
    lines.push(
      `On disk at ${Number(count).toLocaleString("en")} entities: ${fixed(disk.diskBytesPerEntity, 0)} bytes per entity ` +
        `for ${fixed(disk.jsonBytesPerEntity, 0)} bytes of JSON data (× ${fixed(disk.diskBytesPerEntity / disk.jsonBytesPerEntity, 2)}).`,
    );
  }
  return lines.join("\n");
}
