import { openDataDirectory, type OpenOptions, type ShardSet } from "../../server/storage/data-directory.js";
import { tempDir } from "./temp-dir.js";

/**
 * A cluster member's data directory in a temporary folder (cluster `test`), opened in-process,
 * with its closing and removal pushed onto `cleanups` (run in reverse after each test).
 */
export async function openMemberDirectory(
  cleanups: (() => unknown)[],
  options: { node?: string; shardCount?: number } & Partial<Pick<OpenOptions, "guard" | "ship">> = {},
): Promise<ShardSet> {
  const { node = "n1", shardCount = 1, ...cluster } = options;
  const dir = tempDir();
  const shards = await openDataDirectory(dir.path, {
    shardCount,
    durability: "process",
    busyTimeoutMs: 5000,
    verify: false,
    member: { cluster: "test", node },
    ...cluster,
  });
  cleanups.push(
    () => dir.remove(),
    () => shards.close(),
  );
  return shards;
}
