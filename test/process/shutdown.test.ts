import { existsSync, statSync } from "node:fs";
import { request as httpRequest, type ClientRequest, type IncomingMessage } from "node:http";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openDataDirectory } from "../../server/storage/data-directory.js";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";

const OPEN_OPTIONS = { shardCount: 8, durability: "process", busyTimeoutMs: 5000, verify: true } as const;

/** A PUT whose body is sent in two halves, so the request is in flight for as long as we like. */
function slowPut(url: string, path: string, body: string): { req: ClientRequest; response: Promise<IncomingMessage> } {
  const req = httpRequest(new URL(path, url), {
    method: "PUT",
    agent: false,
    headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) },
  });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.on("response", resolve);
    req.on("error", reject);
  });
  req.write(body.slice(0, 5));
  return { req, response };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("SIGTERM", () => {
  it("under load: exits 0, and every 2xx is durable and none is half-applied", async () => {
    const dir = tempDir();
    try {
      const server = await ServerProcess.start({ dataDir: dir.path, workers: 2 });
      const acked = new Map<string, number[]>();
      let signalledAt = Number.POSITIVE_INFINITY;
      let ackedAfterSignal = 0;
      // Each loop owns one account. Every step is one `ops` request that changes two members
      // together; a half-applied step would leave them disagreeing.
      const loop = async (account: string) => {
        const steps: number[] = [];
        acked.set(account, steps);
        for (let step = 0; ; step += 1) {
          let res: Response;
          try {
            res = await fetch(`${server.url}/v1/entities/account/${account}/ops`, {
              method: "POST",
              headers: { "Content-Type": "application/json", "Idempotency-Key": `${account}-${step}` },
              body: JSON.stringify({
                do: [
                  { op: "inc", path: "/balance", value: 1 },
                  { op: "append", path: "/history", value: step },
                ],
                upsert: true,
              }),
            });
          } catch {
            return; // the server has stopped accepting
          }
          if (!res.ok) return;
          await res.arrayBuffer();
          steps.push(step);
          if (Date.now() > signalledAt) ackedAfterSignal += 1;
        }
      };
      const loops = Array.from({ length: 12 }, (_, i) => loop(`acct-${i}`));
      // Signal once the load is in full swing (the machine may be slow to get there).
      const acks = () => [...acked.values()].reduce((sum, steps) => sum + steps.length, 0);
      for (const started = Date.now(); acks() < 100 && Date.now() - started < 30_000;) await sleep(50);
      signalledAt = Date.now();
      const exitCode = await server.stop();
      const stoppedIn = Date.now() - signalledAt;
      await Promise.all(loops);

      expect(exitCode).toBe(0);
      expect(stoppedIn).toBeLessThan(15_000);
      expect(ackedAfterSignal).toBeGreaterThan(0);
      // Checkpointed and closed: no WAL content left, and the server's note is gone.
      for (let shard = 0; shard < 8; shard += 1) {
        const wal = join(dir.path, `shard-00${shard}.sqlite-wal`);
        expect(existsSync(wal) ? statSync(wal).size : 0).toBe(0);
      }
      expect(existsSync(join(dir.path, "server.json"))).toBe(false);

      const shards = await openDataDirectory(dir.path, OPEN_OPTIONS);
      try {
        let total = 0;
        for (const [account, steps] of acked) {
          total += steps.length;
          const row = shards.shardFor("account", account).readEntity("account", account);
          const data = JSON.parse(row?.data ?? '{"balance":0,"history":[]}') as { balance: number; history: number[] };
          expect(data.balance).toBe(data.history.length);
          expect(new Set(data.history).size).toBe(data.history.length);
          for (const step of steps) expect(data.history).toContain(step);
        }
        expect(total).toBeGreaterThanOrEqual(100);
      } finally {
        shards.close();
      }
    } finally {
      dir.remove();
    }
  });

  it("lets a request in flight finish before exiting 0", async () => {
    const dir = tempDir();
    try {
      const server = await ServerProcess.start({ dataDir: dir.path, workers: 1 });
      const { req, response } = slowPut(server.url, "/v1/entities/doc/slow", JSON.stringify({ finished: true }));
      await sleep(300);
      server.kill("SIGTERM");
      let exited = false;
      void server.exitCode.then(() => (exited = true));
      await sleep(800);
      expect(exited).toBe(false);
      req.end(JSON.stringify({ finished: true }).slice(5));
      expect((await response).statusCode).toBe(201);
      expect(await server.exitCode).toBe(0);

      const shards = await openDataDirectory(dir.path, OPEN_OPTIONS);
      try {
        expect(JSON.parse(shards.shardFor("doc", "slow").readEntity("doc", "slow")?.data ?? "null")).toEqual({ finished: true });
      } finally {
        shards.close();
      }
    } finally {
      dir.remove();
    }
  });

  it("a second signal exits at once, without waiting for requests in flight", async () => {
    const dir = tempDir();
    try {
      const server = await ServerProcess.start({ dataDir: dir.path, workers: 1 });
      const { req, response } = slowPut(server.url, "/v1/entities/doc/never", JSON.stringify({ finished: false }));
      response.catch(() => {});
      await sleep(300);
      server.kill("SIGTERM");
      await sleep(300);
      const second = Date.now();
      server.kill("SIGTERM");
      const code = await server.exitCode;
      expect(Date.now() - second).toBeLessThan(3_000);
      expect(code).not.toBe(0);
      req.destroy();
    } finally {
      dir.remove();
    }
  });
});
