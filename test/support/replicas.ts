import { slotOf } from "../../schema/placement.js";
import { eventually } from "./cluster-etcd.js";
import type { IncrementLoad } from "./increment-load.js";
import type { ClusterAnswer, TestCluster } from "./test-cluster.js";

/** Some node of the cluster that is running, to ask about the cluster. */
export function anyLive(cluster: TestCluster): string {
  const id = cluster.ids.find((node) => cluster.node(node).server);
  if (!id) throw new Error("no node is running");
  return id;
}

/**
 * Waits until every shard has a live owner and `replicas - 1` live followers; resolves to that
 * status. A timeout fails with the last status and the end of every node's log.
 */
export async function fullyReplicated(cluster: TestCluster, replicas = 2): Promise<ClusterAnswer> {
  let status: ClusterAnswer | undefined;
  const waited = eventually(
    `every shard to have a live owner and ${replicas - 1} live follower(s)`,
    async () => {
      status = await cluster.status(anyLive(cluster)).catch(() => undefined);
      if (!status) return false;
      const alive = new Set(status.nodes.filter((node) => node.alive).map((node) => node.node));
      return status.shards.every(
        (shard) => alive.has(shard.node) && shard.followers.filter((node) => alive.has(node)).length === replicas - 1,
      );
    },
    60_000,
  );
  await explained(cluster, waited, () => status);
  return status as ClusterAnswer;
}

/**
 * Waits for `waiting`; when it fails, the error also carries the cluster's status (the one given,
 * else one read now) and the end of every node's log, so a failure in CI can be read afterwards.
 */
export async function explained<T>(
  cluster: TestCluster,
  waiting: Promise<T>,
  lastStatus: () => ClusterAnswer | undefined = () => undefined,
): Promise<T> {
  try {
    return await waiting;
  } catch (error) {
    const status = lastStatus() ?? (await cluster.status(anyLive(cluster)).catch(() => undefined));
    throw new Error(`${String(error)}\nlast status: ${JSON.stringify(status)}\n${cluster.logs()}`, { cause: error });
  }
}

interface Digest {
  entities: number;
  rows: number;
  checksum: string;
}

/** Waits until every copy of every shard (owner's and followers') holds the same rows, by their digests. */
export async function copiesAgree(cluster: TestCluster): Promise<void> {
  let last = "";
  await eventually(
    "every follower to hold its owner's rows",
    async () => {
      const status = await cluster.status(anyLive(cluster));
      const mismatched: string[] = [];
      for (const shard of status.shards) {
        const digests = await Promise.all(
          [shard.node, ...shard.followers].map(async (node) => {
            const { status: code, body } = await cluster.admin<Digest>(
              node,
              "GET",
              `/admin/cluster/shards/${shard.shard}/digest`,
            );
            return code === 200 ? `${body.rows}/${body.entities}/${body.checksum.slice(0, 12)}` : `answered ${code}`;
          }),
        );
        if (new Set(digests).size !== 1) {
          const copies = [shard.node, ...shard.followers].map((node, index) => `${node} ${digests[index]}`);
          mismatched.push(`shard ${shard.shard} (epoch ${shard.epoch}): ${copies.join(" | ")}`);
        }
      }
      last = mismatched.join("; ");
      return mismatched.length === 0;
    },
    30_000,
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}: ${last}`);
  });
}

/** An id of type `type` whose slot lies in shard `shard`'s range. */
export function idInShard(status: ClusterAnswer, shard: number, type = "probe"): string {
  const entry = status.shards.find((candidate) => candidate.shard === shard);
  if (!entry) throw new Error(`the cluster has no shard ${shard}`);
  for (let i = 0; ; i++) {
    const slot = slotOf(type, `p${i}`);
    if (entry.slots.from <= slot && slot <= entry.slots.to) return `p${i}`;
  }
}

/** PUTs `data` as entity `probe/<id>` through `url`; resolves to the answer's status. */
export async function putProbe(url: string, id: string, data: object, timeoutMs = 10_000): Promise<number> {
  const answer = await fetch(`${url}/v1/entities/probe/${id}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(data),
    signal: AbortSignal.timeout(timeoutMs),
  });
  await answer.arrayBuffer();
  return answer.status;
}

/**
 * Stops the load and checks its history (every acknowledged increment there exactly once), then
 * waits until every shard is fully replicated again and every copy holds the same rows.
 */
export async function historyHoldsAndCopiesAgree(cluster: TestCluster, load: IncrementLoad): Promise<void> {
  await load.stop();
  await cluster.expectHistoryHolds(load, anyLive(cluster));
  await fullyReplicated(cluster);
  await copiesAgree(cluster);
}
