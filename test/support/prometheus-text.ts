/** One sample of a Prometheus text exposition: its series (name and sorted labels) and value. */
export type Samples = Map<string, number>;

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(${LABEL}(?:,${LABEL})*)?,?\\})? (\\S+)(?: -?\\d+)?$`);
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/**
 * Parses the Prometheus text format (0.0.4) strictly enough to fail on anything malformed: every
 * line is a HELP, a TYPE declared once per family before its samples, or a well-formed sample.
 */
export function parsePrometheusText(text: string): Samples {
  const samples: Samples = new Map();
  const typed = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const comment = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (comment) {
      const [, kind, name, rest] = comment as unknown as [string, string, string, string];
      if (!new RegExp(`^${NAME}$`).test(name)) throw new Error(`bad metric name: ${line}`);
      if (kind === "TYPE") {
        if (!TYPES.has(rest) || typed.has(name)) throw new Error(`bad TYPE line: ${line}`);
        typed.set(name, rest);
      }
      continue;
    }
    const match = SAMPLE.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    const [, name, labels = "", value] = match as unknown as [string, string, string | undefined, string];
    const family = [name, name.replace(/_(bucket|sum|count)$/, "")].find((candidate) => typed.has(candidate));
    if (!family) throw new Error(`sample before its TYPE: ${line}`);
    const number = Number(value.replace(/^\+Inf$/, "Infinity").replace(/^-Inf$/, "-Infinity"));
    if (Number.isNaN(number) && value !== "NaN") throw new Error(`bad sample value: ${line}`);
    samples.set(series(name, labelsOf(labels)), number);
  }
  return samples;
}

/** The key of a series: `name{a="1",b="2"}` with the labels sorted. */
function series(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([key, value]) => `${key}="${value}"`);
  return parts.length ? `${name}{${parts.join(",")}}` : name;
}

/** The sum of every sample of `name` whose labels include `labels`. */
export function sumOf(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [key, value] of samples) {
    const brace = key.indexOf("{");
    const seriesName = brace === -1 ? key : key.slice(0, brace);
    const rest = brace === -1 ? "" : key.slice(brace);
    if (seriesName !== name) continue;
    if (Object.entries(labels).every(([label, want]) => rest.includes(`${label}="${want}"`))) total += value;
  }
  return total;
}

function labelsOf(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const match of text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
    labels[match[1] as string] = match[2] as string;
  }
  return labels;
}
