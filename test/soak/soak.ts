/**
 * `npm run soak`: a bounded mixed load against a real server, printing throughput, answers by
 * status, and the resident memory of the primary and every worker over time. It fails (exit 1)
 * on any 5xx other than 503, any network error, or a process whose memory keeps growing.
 *
 * @example
 * npm run soak -- --seconds 600 --clients 32 --workers 2
 */
import { readFileSync } from "node:fs";
import { Agent } from "node:http";
import { parseArgs } from "node:util";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";
import { jsonRequest, send, type Reply, type SendOptions } from "../support/http.js";

const { values: flags } = parseArgs({
  options: {
    seconds: { type: "string", default: process.env.APOSTATE_SOAK_SECONDS ?? "120" },
    clients: { type: "string", default: "16" },
    workers: { type: "string", default: "2" },
    keys: { type: "string", default: "5000" },
    sample: { type: "string", default: "5" },
    "max-growth-mb": { type: "string", default: "32" },
  },
});
const SECONDS = Number(flags.seconds);
const CLIENTS = Number(flags.clients);
const WORKERS = Number(flags.workers);
const KEYS = Number(flags.keys);
const SAMPLE_MS = Number(flags.sample) * 1000;
const MAX_GROWTH_BYTES = Number(flags["max-growth-mb"]) * 1024 * 1024;

interface Sample {
  atSeconds: number;
  requests: number;
  /** RSS in bytes by process role ("primary", "worker 1", …). */
  rss: Map<string, number>;
}

/** VmRSS of a process, in bytes (undefined once it is gone). */
function rssOf(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
}

/** A seeded generator, so that a run's mix of requests can be repeated. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    return state / 2 ** 32;
  };
}

type Action = (next: () => number, client: number, seq: number) => { method: string; path: string; options: SendOptions };

const pad = "p".repeat(2048);
const keyed = (options: SendOptions, key: string): SendOptions => ({
  ...options,
  headers: { ...options.headers, "idempotency-key": key },
});
const anyId = (next: () => number) => `k${Math.floor(next() * KEYS)}`;

/** The mix, by weight: mostly reads and small updates, some creates, deletes and listings. */
const ACTIONS: [number, Action][] = [
  [30, (next) => ({ method: "GET", path: `/v1/entities/soak/${anyId(next)}`, options: {} })],
  [
    15,
    (next, client, seq) => ({
      method: "PUT",
      path: `/v1/entities/soak/${anyId(next)}`,
      options: keyed(jsonRequest({ client, seq, pad: next() < 0.2 ? pad : "" }), `put-${client}-${seq}`),
    }),
  ],
  [
    20,
    (next, client, seq) => ({
      method: "POST",
      path: `/v1/entities/soak/${anyId(next)}/ops`,
      options: keyed(
        jsonRequest({
          if: [{ path: "/n", op: "ne", value: -1 }],
          do: [
            { op: "inc", path: "/n", value: 1 },
            { op: "set", path: "/last", value: seq },
          ],
          upsert: true,
        }),
        `ops-${client}-${seq}`,
      ),
    }),
  ],
  [
    10,
    (next) => ({
      method: "PATCH",
      path: `/v1/entities/soak/${anyId(next)}`,
      options: jsonRequest({ patched: next(), gone: null }, "application/merge-patch+json"),
    }),
  ],
  [
    5,
    (next) => ({
      method: "PATCH",
      path: `/v1/entities/soak/${anyId(next)}`,
      options: jsonRequest([{ op: "add", path: "/tags", value: ["a", "b"] }], "application/json-patch+json"),
    }),
  ],
  [5, (next) => ({ method: "DELETE", path: `/v1/entities/soak/${anyId(next)}`, options: {} })],
  [5, (next) => ({ method: "GET", path: `/v1/entities/soak?limit=50&prefix=k${Math.floor(next() * 10)}`, options: {} })],
  [
    10,
    (_next, client, seq) => ({
      // A retry: the same keyed request as one sent a little earlier, answered by replay.
      method: "POST",
      path: `/v1/entities/soak/retry-${client}/ops`,
      options: keyed(
        jsonRequest({ do: [{ op: "inc", path: "/n", value: 1 }], upsert: true }),
        `retry-${client}-${Math.floor(seq / 4)}`,
      ),
    }),
  ],
];
const TOTAL_WEIGHT = ACTIONS.reduce((sum, [weight]) => sum + weight, 0);

function pick(next: () => number): Action {
  let roll = next() * TOTAL_WEIGHT;
  for (const [weight, action] of ACTIONS) {
    roll -= weight;
    if (roll < 0) return action;
  }
  return ACTIONS[0]![1];
}

const mb = (bytes: number | undefined) => (bytes === undefined ? "-" : (bytes / 1024 / 1024).toFixed(1));

async function main(): Promise<number> {
  const dir = tempDir("apostate-soak-");
  const server = await ServerProcess.start({ dataDir: dir.path, workers: WORKERS });
  const primary = server.child.pid!;
  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  const statuses = new Map<string, number>();
  let requests = 0;
  let networkErrors = 0;
  const latencies: number[] = [];
  const deadline = Date.now() + SECONDS * 1000;
  const started = Date.now();
  const samples: Sample[] = [];

  const sample = (): void => {
    const rss = new Map<string, number>([["primary", rssOf(primary) ?? 0]]);
    childrenOf(primary).forEach((pid, i) => rss.set(`worker ${i + 1}`, rssOf(pid) ?? 0));
    const entry = { atSeconds: Math.round((Date.now() - started) / 1000), requests, rss };
    const previous = samples.at(-1);
    samples.push(entry);
    const rate = previous ? ((entry.requests - previous.requests) / (entry.atSeconds - previous.atSeconds || 1)).toFixed(0) : "-";
    console.log(
      `${String(entry.atSeconds).padStart(5)}s  ${String(rate).padStart(6)} req/s  ` +
        [...rss.entries()].map(([role, bytes]) => `${role} ${mb(bytes)} MB`).join("  "),
    );
  };

  console.log(`soak: ${SECONDS}s, ${CLIENTS} clients, ${WORKERS} workers, ${KEYS} keys, data in ${dir.path}`);
  sample();
  const sampler = setInterval(sample, SAMPLE_MS);
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, client) => {
      const next = random(client + 1);
      for (let seq = 0; Date.now() < deadline; seq++) {
        const { method, path, options } = pick(next)(next, client, seq);
        const begun = performance.now();
        let reply: Reply;
        try {
          reply = await send(server.url, method, path, { ...options, agent, timeoutMs: 30_000 });
        } catch {
          networkErrors += 1;
          continue;
        }
        latencies.push(performance.now() - begun);
        requests += 1;
        const key = `${method} ${reply.status}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
      }
    }),
  );
  clearInterval(sampler);
  agent.destroy();
  await server.stop();
  dir.remove();

  const elapsed = (Date.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const percentile = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]?.toFixed(1);
  console.log(
    `\n${requests} requests in ${elapsed.toFixed(0)}s: ${(requests / elapsed).toFixed(0)} req/s; latency p50 ${percentile(0.5)} ms, p99 ${percentile(0.99)} ms`,
  );
  console.log("answers:", Object.fromEntries([...statuses.entries()].sort()));
  const serverErrors = [...statuses.entries()]
    .filter(([key]) => /\s5\d\d$/.test(key) && !key.endsWith(" 503"))
    .reduce((sum, [, n]) => sum + n, 0);
  const unavailable = [...statuses.entries()].filter(([key]) => key.endsWith(" 503")).reduce((sum, [, n]) => sum + n, 0);
  console.log(`errors: ${serverErrors} 5xx (other than 503), ${unavailable} 503, ${networkErrors} network`);

  /*
   * Memory is judged on averages, which the garbage collector's sawtooth does not disturb: the
   * second quarter of the run (after warm-up) against the last quarter. A leak raises the
   * second figure; a flat process keeps both within the bound.
   */
  const average = (entries: Sample[], role: string) =>
    entries.reduce((sum, entry) => sum + (entry.rss.get(role) ?? 0), 0) / (entries.length || 1);
  const early = samples.filter((entry) => entry.atSeconds >= SECONDS / 4 && entry.atSeconds <= SECONDS / 2);
  const late = samples.filter((entry) => entry.atSeconds >= (SECONDS * 3) / 4);
  let grew = false;
  for (const role of samples[0]!.rss.keys()) {
    const growth = average(late, role) - average(early, role);
    const peak = Math.max(...samples.map((entry) => entry.rss.get(role) ?? 0));
    grew ||= growth > MAX_GROWTH_BYTES;
    console.log(
      `memory ${role}: ${mb(average(early, role))} MB (2nd quarter) -> ${mb(average(late, role))} MB (last quarter), ` +
        `growth ${mb(growth)} MB (bound ${mb(MAX_GROWTH_BYTES)} MB), peak ${mb(peak)} MB`,
    );
  }
  const ok = serverErrors === 0 && networkErrors === 0 && !grew;
  console.log(ok ? "soak: OK" : "soak: FAILED");
  return ok ? 0 : 1;
}

process.exitCode = await main();
