import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The parts of a .cpuprofile (V8's format, written by `node --cpu-prof`) read here. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[];
  samples: number[];
}

type CallFrame = CpuProfile["nodes"][number]["callFrame"];

/*
 * What a sample counts for: anything under pino or prom-client is the request log and metrics;
 * otherwise the function it was running decides. better-sqlite3's native calls are sampled as
 * the JavaScript that called them, so the storage layer's row stands for SQLite.
 */
const CATEGORIES: [string, (leaf: CallFrame, stack: CallFrame[]) => boolean][] = [
  [
    "request log and metrics (pino, prom-client)",
    (_leaf, stack) => stack.some((frame) => /\/(pino|sonic-boom|prom-client)\//.test(frame.url)),
  ],
  ["garbage collection", (leaf) => leaf.functionName === "(garbage collector)"],
  ["validation (Ajv)", (leaf) => /\/ajv\//.test(leaf.url)],
  [
    "JSON bodies (body-parser, raw-body)",
    (leaf) => /\/(body-parser|raw-body|iconv-lite|type-is|content-type|on-finished)\//.test(leaf.url),
  ],
  ["express (router, request and response)", (leaf) => /\/(express|router)\//.test(leaf.url)],
  ["SQLite and the storage layer (server/storage)", (leaf) => /\/server\/storage\/|better-sqlite3/.test(leaf.url)],
  ["apostate's HTTP and domain code", (leaf) => /\/(server|schema)\//.test(leaf.url)],
  ["node's own code (http, sockets, streams, crypto)", (leaf) => leaf.url === "" || leaf.url.startsWith("node:")],
];
const OTHER = "other libraries";

/**
 * Shares of busy CPU by category over the profiles in `dir` whose process is not `excludePid`
 * (the cluster primary, which mostly starts up and waits). Idle samples are left out.
 */
export function summarizeProfiles(dir: string, excludePid: number | undefined): { samples: number; shares: Map<string, number> } {
  const counts = new Map<string, number>();
  let busy = 0;
  const files = readdirSync(dir).filter((file) => file.endsWith(".cpuprofile") && !file.includes(`.${excludePid}.`));
  for (const file of files) {
    const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile;
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const parentOf = new Map<number, number>();
    for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
    const category = new Map<number, string>();
    const categoryOf = (id: number): string => {
      const known = category.get(id);
      if (known) return known;
      const stack: CallFrame[] = [];
      for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at))
        stack.push((byId.get(at) as CpuProfile["nodes"][number]).callFrame);
      const leaf = stack[0] as CallFrame;
      const found = CATEGORIES.find(([, matches]) => matches(leaf, stack))?.[0] ?? OTHER;
      category.set(id, found);
      return found;
    };
    for (const id of profile.samples) {
      const name = byId.get(id)?.callFrame.functionName;
      if (name === "(idle)" || name === "(program)") continue;
      busy += 1;
      const found = categoryOf(id);
      counts.set(found, (counts.get(found) ?? 0) + 1);
    }
  }
  const shares = new Map([...counts].sort((a, b) => b[1] - a[1]).map(([name, count]) => [name, count / busy]));
  return { samples: busy, shares };
}
