import { once } from "node:events";
import { createServer, type RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { createApp } from "../../server/app.js";
import { EntityStore } from "../../server/entities/entity-store.js";
import { openDataDirectory, type ShardSet } from "../../server/storage/data-directory.js";
import { checkedListener } from "./contract.js";
import { tempDir } from "./temp-dir.js";

export interface TestApp {
  app: RequestListener;
  shards: ShardSet;
  dataDir: string;
  close: () => void;
}

/**
 * The HTTP app in-process (for supertest), over a new, empty data directory, or over `dataDir`
 * (which `close()` then leaves in place). Every exchange with it is held against openapi.yaml
 * (contract.ts): a disagreement fails the test.
 */
export async function createTestApp(
  options: { shardCount?: number; bodyLimit?: number; token?: string; adminToken?: string; dataDir?: string } = {},
): Promise<TestApp> {
  const dir = options.dataDir === undefined ? tempDir() : { path: options.dataDir, remove: () => undefined };
  const shards = await openDataDirectory(dir.path, {
    shardCount: options.shardCount ?? 8,
    durability: "process",
    busyTimeoutMs: 5000,
    verify: true,
  });
  const app = await createApp({
    store: new EntityStore(shards),
    shards,
    logger: pino({ level: "silent" }),
    bodyLimit: options.bodyLimit ?? 1_048_576,
    token: options.token,
    adminToken: options.adminToken,
  });
  return {
    app: await checkedListener(app),
    shards,
    dataDir: dir.path,
    close: () => {
      shards.close();
      dir.remove();
    },
  };
}

/** A test app listening on a port of its own, for requests no HTTP client library would send. */
export async function listenTestApp(options: Parameters<typeof createTestApp>[0] = {}): Promise<TestApp & { url: string }> {
  const t = await createTestApp(options);
  const server = createServer(t.app).listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    ...t,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      server.close();
      t.close();
    },
  };
}
