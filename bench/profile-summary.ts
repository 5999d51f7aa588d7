import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The parts of a .cpuprofile (V8's format, written by `node --cpu-prof`) read here. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[];
  samples: number[];
  /** Microseconds on the monotonic clock (CLOCK_MONOTONIC on Linux, as `process.hrtime`). */
  startTime: number;
  /** Microseconds from the previous sample (the first: from `startTime`). */
  timeDeltas: number[];
}

/** A span of time in microseconds on the monotonic clock, both ends included. */
export interface TimeWindow {
  from: number;
  to: number;
}

type CallFrame = CpuProfile["nodes"][number]["callFrame"];

/*
 * What a sample counts for, first match wins: anything under pino counts as the request log,
 * under prom-client as the metrics, under the token check as auth, under json-body.ts as the
 * body reader, under Ajv as validation; otherwise the function it was running decides, or for
 * native code (V8 builtins, node's bindings) the nearest JavaScript that called it, except that
 * JSON.parse and JSON.stringify outside the body reader count as serialisation.
 * better-sqlite3's native calls are sampled as the JavaScript that called them, so the write
 * queue's BEGIN IMMEDIATE (which fails and is retried while another worker holds the shard's
 * lock) stands for locking, its own statements (savepoints, COMMIT) for the write queue, and
 * the statements of the storage layer (those a write runs inside the queue's transaction too)
 * for SQLite.
 */
const under = (pattern: RegExp) => (_caller: CallFrame, stack: CallFrame[]) => stack.some((frame) => pattern.test(frame.url));
const inFile = (pattern: RegExp) => (caller: CallFrame) => pattern.test(caller.url);
/** Each matcher gets the nearest frame with a source (a native leaf's caller) and the whole stack, leaf first. */
const CATEGORIES: [string, (caller: CallFrame, stack: CallFrame[]) => boolean][] = [
  ["request log (pino)", under(/\/(pino|sonic-boom|thread-stream)\//)],
  ["metrics (prom-client, server/metrics)", under(/\/prom-client\/|\/server\/metrics\//)],
  ["request id and timing (request-observer)", under(/\/server\/http\/request-observer\./)],
  ["garbage collection", (_caller, stack) => stack[0]?.functionName === "(garbage collector)"],
  ["auth (token check)", under(/\/server\/http\/auth\./)],
  ["body reader and JSON.parse", under(/\/server\/http\/json-body\./)],
  ["validation (route table, Ajv)", under(/\/ajv\/|\/server\/http\/(route-table|request-validator)\./)],
  ["express (router, request and response)", inFile(/\/(express|router)\//)],
  [
    "the forwarder's HTTP client (undici's own code and its wasm parser; its socket writes count as sockets)",
    inFile(/\/undici\/|^wasm:\/\//),
  ],
  [
    "locking: BEGIN IMMEDIATE and its busy retries (write queue)",
    (_leaf, stack) => stack.some((frame) => frame.functionName === "begin" && /\/write-queue\./.test(frame.url)),
  ],
  ["write queue: savepoints, COMMIT, scheduling", inFile(/\/server\/storage\/write-queue\./)],
  ["SQLite statements (server/storage, better-sqlite3)", inFile(/\/server\/storage\/|better-sqlite3/)],
  [
    "serialisation (entity JSON, JSON.parse and JSON.stringify)",
    (caller, stack) =>
      /\/server\/entities\/entity\./.test(caller.url) ||
      (stack[0]?.url === "" && /^(parse|stringify)$/.test(stack[0].functionName)),
  ],
  ["apostate's domain code (entities, documents, placement)", inFile(/\/server\/(entities|documents)\/|\/schema\//)],
  ["apostate's HTTP code (routes, data plane, app)", inFile(/\/server\//)],
  [
    "HTTP parsing (node's parser, incoming requests)",
    (caller, stack) =>
      /^node:_http_(common|incoming)$/.test(caller.url) ||
      /^parserOn/.test(caller.functionName) ||
      (stack[0]?.url === "" && stack[0].functionName === "execute"),
  ],
  ["HTTP responses and sockets (node:_http_outgoing, _http_server, net, streams)", (caller) => caller.url.startsWith("node:")],
  ["native code with no JavaScript caller (the HTTP parser, timers, microtasks)", (caller) => caller.url === ""],
];
const OTHER = "other libraries";

/**
 * Shares of busy CPU by category over the profiles in `dir` whose process is not `excludePid`
 * (the cluster primary, which mostly starts up and waits), counting only samples taken within
 * `windows` (start-up would otherwise weigh as much as thousands of requests). Idle samples are left out.
 */
export function summarizeProfiles(
  dir: string,
  excludePid: number | undefined,
  windows: TimeWindow[],
): { samples: number; shares: Map<string, number> } {
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
      const caller = stack.find((frame) => frame.url !== "") ?? (stack[0] as CallFrame);
      const found = CATEGORIES.find(([, matches]) => matches(caller, stack))?.[0] ?? OTHER;
      category.set(id, found);
      return found;
    };
    let time = profile.startTime;
    for (const [i, id] of profile.samples.entries()) {
      time += profile.timeDeltas[i] ?? 0;
      if (!windows.some(({ from, to }) => time >= from && time <= to)) continue;
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

/**
 * {@link summarizeProfiles} as text: "busy CPU while measured", then a line per category with
 * its share and, given the CPU per request the samples stand for, its µs per request.
 */
export function profileText(
  dir: string,
  excludePid: number | undefined,
  windows: TimeWindow[],
  microsPerRequest?: number | null,
): string {
  const { samples, shares } = summarizeProfiles(dir, excludePid, windows);
  const lines = [...shares].map(
    ([name, share]) =>
      `  ${`${(share * 100).toFixed(1)}%`.padStart(6)}${microsPerRequest ? `${(share * microsPerRequest).toFixed(0).padStart(6)} µs` : ""}  ${name}`,
  );
  return `busy CPU while measured (${samples} samples; profiles in ${dir}):\n${lines.join("\n")}\n`;
}
