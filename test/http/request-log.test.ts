import { once } from "node:events";
import { createServer, request, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { Command, CommanderError } from "commander";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { addServeOptions, toServeConfig } from "../../server/config.js";
import { HttpMetrics } from "../../server/metrics/http-metrics.js";
import { observeRequests, SLOW_REQUEST_MS, type RequestLogging } from "../../server/http/request-observer.js";

interface Line {
  level: number;
  msg: string;
  path?: string;
  status?: number;
  ms?: number;
  aborted?: boolean;
}

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/**
 * A server whose every request is observed with `logging`: `/fast` answers at once, `/slow` after
 * SLOW_REQUEST_MS and a little more, `/hang` never (the client gives up). Its log lines are kept.
 */
async function observedServer(logging: RequestLogging) {
  const lines: Line[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Line);
      done();
    },
  });
  const observe = observeRequests({ logger: pino(sink), metrics: new HttpMetrics(new Registry()), logging });
  const answer = (res: ServerResponse) => res.end("{}");
  const server = createServer((req, res) => {
    const path = req.url ?? "/";
    observe(req, res, { path, route: path });
    if (path === "/fast") answer(res);
    else if (path === "/slow") setTimeout(() => answer(res), SLOW_REQUEST_MS + 50);
  }).listen(0, "127.0.0.1");
  await once(server, "listening");
  closers.push(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, lines };
}

function get(url: string, options: { abortAfterMs?: number } = {}): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      res.resume();
      res.once("end", () => resolve(res.statusCode));
    });
    req.once("error", (error) => (options.abortAfterMs === undefined ? reject(error) : resolve(undefined)));
    if (options.abortAfterMs !== undefined) setTimeout(() => req.destroy(), options.abortAfterMs);
    req.end();
  });
}

describe("request log lines", () => {
  it("by default, leave out requests answered in time and log slow and cut-off ones as warnings", async () => {
    const { url, lines } = await observedServer("slow");
    expect(await get(`${url}/fast`)).toBe(200);
    expect(await get(`${url}/slow`)).toBe(200);
    await get(`${url}/hang`, { abortAfterMs: 50 });
    await expect.poll(() => lines.length).toBe(2);
    expect(lines).toEqual([
      expect.objectContaining({ level: 40, msg: "slow request", path: "/slow", status: 200 }),
      expect.objectContaining({ level: 40, msg: "request aborted", path: "/hang", aborted: true }),
    ]);
    expect(lines[0]?.ms).toBeGreaterThanOrEqual(SLOW_REQUEST_MS);
  });

  it("with `all`, log every request answered as one info line", async () => {
    const { url, lines } = await observedServer("all");
    expect(await get(`${url}/fast`)).toBe(200);
    expect(await get(`${url}/fast`)).toBe(200);
    await expect.poll(() => lines.length).toBe(2);
    expect(lines).toEqual([
      expect.objectContaining({ level: 30, msg: "request", path: "/fast", status: 200 }),
      expect.objectContaining({ level: 30, msg: "request", path: "/fast", status: 200 }),
    ]);
  });
});

describe("--log-requests", () => {
  const logRequests = (args: string[]) => {
    let chosen: string | undefined;
    addServeOptions(new Command("serve"))
      .exitOverride()
      .configureOutput({ writeErr: () => undefined, writeOut: () => undefined })
      .action((options: Record<string, unknown>) => {
        chosen = toServeConfig(options).logRequests;
      })
      .parse(args, { from: "user" });
    return chosen;
  };

  it("is `slow` unless `all` is asked for, and takes nothing else", () => {
    expect(logRequests([])).toBe("slow");
    expect(logRequests(["--log-requests", "all"])).toBe("all");
    expect(() => logRequests(["--log-requests", "none"])).toThrow(CommanderError);
  });
});
