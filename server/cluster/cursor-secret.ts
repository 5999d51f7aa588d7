import { randomBytes } from "node:crypto";
import type { Namespace } from "etcd3";
import { CLUSTER_KEYS } from "./etcd-client.js";

const SECRET_BYTES = 32;

/**
 * The key that signs list cursors on every node of the cluster, so a cursor from one node is
 * accepted by any other. The first node to ask creates it; everyone gets the same one.
 */
export async function clusterCursorSecret(cluster: Namespace): Promise<Buffer> {
  const candidate = randomBytes(SECRET_BYTES).toString("base64");
  const result = await cluster
    .if(CLUSTER_KEYS.cursorSecret, "Create", "==", 0)
    .then(cluster.put(CLUSTER_KEYS.cursorSecret).value(candidate))
    .else(cluster.get(CLUSTER_KEYS.cursorSecret))
    .commit();
  const stored = result.succeeded ? candidate : result.responses[0]?.response_range.kvs[0]?.value.toString();
  if (stored === undefined) throw new Error("the cluster's cursor secret vanished while it was read");
  return Buffer.from(stored, "base64");
}
