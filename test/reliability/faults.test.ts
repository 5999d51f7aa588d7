import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";
import { acknowledged, expectExactlyOnce, runAppendLoad, settle, type AppendOp } from "../support/append-load.js";
import { bodyOf, jsonRequest, send, type Reply } from "../support/http.js";
import { setting } from "../support/settings.js";

function expectUnavailable(reply: Reply): void {
  expect(
    { status: reply.status, code: (bodyOf(reply) as { code?: string }).code, type: reply.headers["content-type"]?.split(";")[0] },
    reply.text,
  ).toEqual({
    status: 503,
    code: "unavailable",
    type: "application/problem+json",
  });
  expect(reply.headers["retry-after"]).toMatch(/^\d+$/);
}

describe("lock contention between workers", () => {
  it(
    "one hot entity hammered through two workers with --busy-timeout 1: waiting or 503 + Retry-After, never 500, nothing lost",
    async () => {
      const dir = tempDir();
      const server = await ServerProcess.start({ dataDir: dir.path, workers: 2, args: ["--busy-timeout", "1"] });
      try {
        const ops: AppendOp[] = [];
        const total = setting(200, 4000);
        const reads: Reply[] = [];
        let stopped = false;
        const reader = (async () => {
          while (!stopped) reads.push(await send(server.url, "GET", "/v1/entities/busy/hot"));
        })();
        await runAppendLoad(server.url, ops, {
          type: "busy",
          ids: ["hot"],
          clients: 16,
          prefix: "busy",
          stop: () => ops.length >= total,
        });
        stopped = true;
        await reader;
        const statuses = new Map<number, number>();
        for (const op of ops) statuses.set(op.reply?.status ?? 0, (statuses.get(op.reply?.status ?? 0) ?? 0) + 1);
        expect(
          ops.filter((op) => op.reply === undefined).map((op) => op.opId),
          "every write was answered",
        ).toEqual([]);
        for (const reply of [...ops.map((op) => op.reply!), ...reads]) {
          if (reply.status === 503) expectUnavailable(reply);
          else expect([200, 201, 404], reply.text).toContain(reply.status);
        }
        console.log(
          `busy-timeout 1: ${ops.length} writes, answers ${JSON.stringify(Object.fromEntries(statuses))}; ${reads.length} reads`,
        );
        await settle(server.url, ops);
        await expectExactlyOnce(server.url, "busy", ["hot"], ops);
        expect(ops.filter(acknowledged).length).toBeGreaterThan(0);
      } finally {
        await server.stop();
        dir.remove();
      }
    },
    setting(90_000, 600_000),
  );
});

/** A small tmpfs of our own, or undefined where this machine does not allow mounting one. */
function mountTmpfs(sizeBytes: number): { path: string; unmount: () => void } | undefined {
  const path = mkdtempSync(join(tmpdir(), "apostate-full-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes}`, "tmpfs", path], { stdio: "ignore" });
  } catch {
    rmSync(path, { recursive: true, force: true });
    return undefined;
  }
  return {
    path,
    unmount: () => {
      execFileSync("umount", ["-l", path], { stdio: "ignore" });
      rmSync(path, { recursive: true, force: true });
    },
  };
}

describe("a full disk", () => {
  // Mounted in a hook, not while collecting, so a filtered run never leaves a mount behind.
  let disk: ReturnType<typeof mountTmpfs>;
  beforeAll(() => {
    disk = mountTmpfs(4 * 1024 * 1024);
  });
  afterAll(() => disk?.unmount());

  it(
    "fails writes with a 5xx problem and no partial write, and the store works again once space returns",
    async (context) => {
      if (disk === undefined) context.skip("mount -t tmpfs is not allowed on this machine");
      const dataDir = join(disk!.path, "data");
      const ballast = join(disk!.path, "ballast");
      const server = await ServerProcess.start({ dataDir, workers: 1, args: ["--shards", "2"] });
      try {
        writeFileSync(ballast, Buffer.alloc(1024 * 1024));
        const pad = "x".repeat(48 * 1024);
        const stored: { id: string; version: number }[] = [];
        const keyed = (key: string, body: unknown) => ({
          ...jsonRequest(body),
          headers: { "content-type": "application/json", "idempotency-key": key },
        });
        expect((await send(server.url, "PUT", "/v1/entities/full/keeper", jsonRequest({ n: 0 }))).status).toBe(201);
        let failed: { id: string; reply: Reply } | undefined;
        for (let i = 0; i < 200 && failed === undefined; i++) {
          const id = `fill${i}`;
          const reply = await send(server.url, "PUT", `/v1/entities/full/${id}`, keyed(`k-${id}`, { i, pad }));
          if (reply.status === 201) stored.push({ id, version: 1 });
          else failed = { id, reply };
        }
        expect(failed, "the disk filled up").toBeDefined();
        expectUnavailable(failed!.reply);
        // Nothing of the failed write is visible, and other writes fail the same clean way.
        expect((await send(server.url, "GET", `/v1/entities/full/${failed!.id}`)).status).toBe(404);
        const update = await send(
          server.url,
          "POST",
          "/v1/entities/full/keeper/ops",
          keyed("k-keeper", {
            do: [
              { op: "set", path: "/pad", value: pad },
              { op: "inc", path: "/n", value: 1 },
            ],
          }),
        );
        expectUnavailable(update);
        expect(bodyOf(await send(server.url, "GET", "/v1/entities/full/keeper"))).toMatchObject({ version: 1, data: { n: 0 } });
        expect((await send(server.url, "GET", `/v1/entities/full/${stored[0]!.id}`)).status).toBe(200);

        rmSync(ballast);
        const retried = await send(
          server.url,
          "PUT",
          `/v1/entities/full/${failed!.id}`,
          keyed(`k-${failed!.id}`, { i: -1, pad }),
        );
        expect({ status: retried.status, replayed: retried.headers["idempotent-replayed"] }, retried.text).toEqual({
          status: 201,
          replayed: undefined,
        });
        const updated = await send(
          server.url,
          "POST",
          "/v1/entities/full/keeper/ops",
          keyed("k-keeper", {
            do: [
              { op: "set", path: "/pad", value: pad },
              { op: "inc", path: "/n", value: 1 },
            ],
          }),
        );
        expect(bodyOf(updated)).toMatchObject({ version: 2, data: { n: 1 } });
        stored.push({ id: failed!.id, version: 1 });
      } finally {
        await server.stop();
      }
      // Every acknowledged write is there after a restart, and the start-up checks pass.
      const again = await ServerProcess.start({ dataDir, workers: 1 });
      try {
        const list = bodyOf(await send(again.url, "GET", "/v1/entities/full?limit=1000")) as {
          items: { id: string; version: number }[];
        };
        expect(list.items.length).toBeGreaterThan(2);
        expect(list.items.find((item) => item.id === "keeper")).toMatchObject({ version: 2 });
      } finally {
        await again.stop();
      }
    },
    setting(90_000, 300_000),
  );
});
