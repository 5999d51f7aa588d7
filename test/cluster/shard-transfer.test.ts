import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { TransferError } from "../../server/cluster/cluster-errors.js";
import { ShardTransfer } from "../../server/cluster/shard-transfer.js";
import { EntityStore } from "../../server/entities/entity-store.js";
import type { ShardSet } from "../../server/storage/data-directory.js";
import { openMemberDirectory } from "../support/member-directory.js";

/*
 * The target's side of a shard's copy: the snapshot is taken only when it arrives as its
 * source's Content-Digest says, since a move then checks only the rows written after it.
 */
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function openSet(): Promise<ShardSet> {
  return openMemberDirectory(cleanups);
}

/** A source node that answers every snapshot request with `body` and `headers`. */
async function source(body: Buffer, headers: Record<string, string>): Promise<string> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/vnd.sqlite3", ...headers }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const digestOf = (bytes: Buffer) => `sha-256=:${createHash("sha256").update(bytes).digest("base64")}:`;

describe("copying a snapshot in", () => {
  it("keeps a copy that matches its Content-Digest, and refuses one that does not or has none", async () => {
    const from = await openSet();
    const store = new EntityStore(from);
    for (let i = 0; i < 50; i += 1) await store.put({ type: "acct", id: `a${i}`, preconditions: {} }, { i });
    const file = from.incomingFile(0);
    const { sequence } = await from.get(0)!.snapshot(file);
    const bytes = readFileSync(file);
    const damaged = Buffer.from(bytes);
    damaged.writeUInt8(damaged.readUInt8(damaged.length - 100) ^ 0xff, damaged.length - 100);

    const target = await openSet();
    const transfer = new ShardTransfer(target, undefined);
    const refusals: { body: Buffer; headers: Record<string, string>; why: RegExp }[] = [
      { body: damaged, headers: { "content-digest": digestOf(bytes) }, why: /arrived damaged/ },
      { body: bytes, headers: { "content-digest": digestOf(damaged) }, why: /arrived damaged/ },
      { body: bytes, headers: {}, why: /with its Content-Digest/ },
    ];
    for (const { body, headers, why } of refusals) {
      const url = await source(body, headers);
      await expect(transfer.copyIncoming(0, { from: url, source: 0 })).rejects.toThrow(TransferError);
      await expect(transfer.copyIncoming(0, { from: url, source: 0 })).rejects.toThrow(why);
      expect(existsSync(target.incomingFile(0))).toBe(false);
    }

    const url = await source(bytes, { "content-digest": digestOf(bytes) });
    await expect(transfer.copyIncoming(0, { from: url, source: 0 })).resolves.toEqual({
      shard: 0,
      sequence,
      applied: 0,
      frozen: false,
    });
    expect((await transfer.incomingDigest(0)).checksum).toBe(from.get(0)!.digest().checksum);
  });
});
