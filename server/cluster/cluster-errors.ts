/*
 * The cluster's failures that reach an HTTP answer, apart from the modules that raise them, so
 * the problem mapper can name them without loading etcd's client into a single-node server.
 */

/** etcd did not answer in time: the topology cannot change now (requests are still served). */
export class TopologyUnavailableError extends Error {}

/** The request cannot be done to the cluster as it is (a node not alive, a shard already there, not a cluster). */
export class InvalidTopologyRequestError extends Error {}

/** The shard is busy with another move or split. */
export class ShardInMotionError extends Error {}

/** No move or split has this id. */
export class UnknownMoveError extends Error {}

/** The node a transfer reads from did not answer as it should; the move step fails and is retried. */
export class TransferError extends Error {}
