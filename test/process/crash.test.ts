import { afterAll, describe, expect, it } from "vitest";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";

const dir = tempDir();
afterAll(() => dir.remove());

interface Acknowledged {
  id: string;
  key: string;
  body: string;
  version: number;
  text: string;
}

async function send(url: string, id: string, key: string, body: string) {
  return fetch(`${url}/v1/entities/acct/${id}/ops`, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": key },
    body,
  });
}

/*
 * Under `power` the acknowledgement waits for the WAL's fsync on the thread pool (FileSync): the
 * same crash must find every write that was acknowledged that way. (A kill -9 does not lose the
 * OS's page cache, so this checks the acknowledgement path, not a power loss.)
 */
describe.each(["process", "power"] as const)("kill -9 under concurrent writes (--durability %s)", (durability) => {
  it("keeps every acknowledged write, and replays it rather than applying it again", async () => {
    const dataDir = `${dir.path}/${durability}`;
    const args = ["--durability", durability];
    const server = await ServerProcess.start({ dataDir, workers: 2, args });
    const acknowledged: Acknowledged[] = [];
    let stop = false;
    let crashed = false;
    const failuresBeforeCrash: unknown[] = [];
    const writer = async (w: number) => {
      for (let i = 0; !stop; i += 1) {
        const id = `a${(w * 7 + i) % 20}`;
        const key = `w${w}-${i}`;
        const body = JSON.stringify({
          do: [
            { op: "append", path: "/log", value: key },
            { op: "inc", path: "/n", value: 1 },
          ],
          upsert: true,
        });
        try {
          const res = await send(server.url, id, key, body);
          const text = await res.text();
          if (res.ok) acknowledged.push({ id, key, body, version: (JSON.parse(text) as { version: number }).version, text });
        } catch (error) {
          // After the crash the connection dies with the server: that write was never acknowledged.
          if (!crashed) failuresBeforeCrash.push(error);
          return;
        }
      }
    };
    const writers = Array.from({ length: 8 }, (_, w) => writer(w));
    // Crash once enough writes are acknowledged rather than after a fixed time: under a full test
    // run on 2 shared cores, a fixed pause can pass before the first write has been answered.
    const deadline = Date.now() + 30_000;
    while (acknowledged.length < 100 && failuresBeforeCrash.length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    crashed = true;
    await server.crash();
    stop = true;
    await Promise.all(writers);
    expect(failuresBeforeCrash).toEqual([]);
    expect(acknowledged.length).toBeGreaterThanOrEqual(100);

    const restarted = await ServerProcess.start({ dataDir, workers: 2, args });
    try {
      for (const ack of acknowledged) {
        const entity = (await (await fetch(`${restarted.url}/v1/entities/acct/${ack.id}`)).json()) as {
          version: number;
          data: { log: string[]; n: number };
        };
        expect(entity.version).toBeGreaterThanOrEqual(ack.version);
        expect(entity.data.log.filter((key) => key === ack.key)).toHaveLength(1);
        expect(entity.data.n).toBe(entity.data.log.length);
      }
      const sample = acknowledged.filter((_, i) => i % Math.ceil(acknowledged.length / 40) === 0);
      for (const ack of sample) {
        const before = (await (await fetch(`${restarted.url}/v1/entities/acct/${ack.id}`)).json()) as { version: number };
        const res = await send(restarted.url, ack.id, ack.key, ack.body);
        expect(res.headers.get("idempotent-replayed")).toBe("true");
        expect(await res.text()).toBe(ack.text);
        const after = (await (await fetch(`${restarted.url}/v1/entities/acct/${ack.id}`)).json()) as { version: number };
        expect(after.version).toBe(before.version);
      }
    } finally {
      await restarted.stop();
    }
    // Two server starts and a load: on a busy 2-core machine, more than the default minute.
  }, 120_000);
});
