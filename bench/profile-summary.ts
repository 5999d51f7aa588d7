import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The parts of a .cpuprofile (V8's format, written by `node --cpu-prof`) read here. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[];
  samples: number[];
}

type CallFrame = CpuProfile["nodes"][number]["callFrame"];

/*
 * What a sample counts for, first match wins: anything under pino counts as the request log,
 * under prom-client as the metrics, under the token check as auth, under body-parser as the
 * body reader, under Ajv as validation; otherwise the function it was running decides.
 * better-sqlite3's native calls are sampled as the JavaScript that called them, so the write
 * queue's BEGIN IMMEDIATE (which fails and is retried while another worker holds the shard's
 * lock) stands for locking, its other statements (savepoints, COMMIT) for the write queue, and
 * the rest of the storage layer for the SQLite statements.
 */
const under = (pattern: RegExp) => (_leaf: CallFrame, stack: CallFrame[]) => stack.some((frame) => pattern.test(frame.url));
const inFile = (pattern: RegExp) => (leaf: CallFrame) => pattern.test(leaf.url);
const CATEGORIES: [string, (leaf: CallFrame, stack: CallFrame[]) => boolean][] = [
  ["request log (pino)", under(/\/(pino|sonic-boom|thread-stream)\//)],
  ["metrics (prom-client, server/metrics)", under(/\/prom-client\/|\/server\/metrics\//)],
  ["request id and timing (request-observer)", under(/\/server\/http\/request-observer\./)],
  ["garbage collection", (leaf) => leaf.functionName === "(garbage collector)"],
  ["auth (token check)", under(/\/server\/http\/auth\./)],
  ["body reader (body-parser, raw-body) and JSON.parse", under(/\/(body-parser|raw-body|iconv-lite|type-is|content-type)\//)],
  [
    "validation (Ajv, express-openapi-validator, openapi-validation)",
    under(/\/(express-openapi-validator|ajv)\/|\/server\/http\/openapi-validation\./),
  ],
  ["express (router, request and response)", inFile(/\/(express|router)\//)],
  [
    "locking: BEGIN IMMEDIATE and its busy retries (write queue)",
    (_leaf, stack) => stack.some((frame) => frame.functionName === "begin" && /\/write-queue\./.test(frame.url)),
  ],
  ["write queue: savepoints, COMMIT, scheduling", under(/\/server\/storage\/write-queue\./)],
  ["SQLite statements (server/storage, better-sqlite3)", inFile(/\/server\/storage\/|better-sqlite3/)],
  ["serialisation (entity JSON, JSON.stringify)", inFile(/\/server\/entities\/entity\./)],
  ["apostate's domain code (entities, documents, placement)", inFile(/\/server\/(entities|documents)\/|\/schema\//)],
  ["apostate's HTTP code (routes, data plane, app)", inFile(/\/server\//)],
  [
    "HTTP parsing (node's parser, incoming requests)",
    (leaf) => /^node:_http_(common|incoming)$/.test(leaf.url) || /^parserOn/.test(leaf.functionName),
  ],
  ["HTTP responses and sockets (node:_http_outgoing, _http_server, net, streams)", (leaf) => leaf.url.startsWith("node:")],
  ["native code without a JavaScript frame (V8 builtins, writev, parser execute)", (leaf) => leaf.url === ""],
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
