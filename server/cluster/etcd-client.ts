import { setTimeout as sleep } from "node:timers/promises";
import { noop } from "cockatiel";
import { Etcd3, isRecoverableError, type IKeyValue, type Namespace } from "etcd3";

/** How long a lost watch stream waits before it reconnects: doubling, at most `WATCH_RETRY_MAX_MS`. */
const WATCH_RETRY_FIRST_MS = 100;
const WATCH_RETRY_MAX_MS = 2_000;

interface Backoff {
  readonly duration: number;
  next(): Backoff;
}

function doublingBackoff(duration: number): Backoff {
  return { duration, next: () => doublingBackoff(Math.min(duration * 2, WATCH_RETRY_MAX_MS)) };
}

/**
 * A client for the etcd cluster at `hosts`. Its watches reconnect within two seconds of etcd
 * coming back (the library's default waits up to 30 s), so a node's cached map catches up fast.
 *
 * No circuit breaker per host (the library's default opens one for 5 s after three failures):
 * every call of a node shares it, and after an etcd outage it stayed open: a node whose lease had
 * lapsed failed every attempt to register again with BrokenCircuitError for a minute or more (the
 * outage test, in CI), as we read its logs because the calls let through to test it kept failing
 * while etcd caught up. The node's own loops already pace their retries; the library still tries
 * each failed call three times.
 */
export function connectEtcd(hosts: readonly string[]): Etcd3 {
  return new Etcd3({
    hosts: [...hosts],
    faultHandling: { host: () => noop, watchBackoff: doublingBackoff(WATCH_RETRY_FIRST_MS) },
  });
}

/** How long a start-up step tries again while etcd is overloaded, and how often. */
const RECOVERABLE_RETRY_MS = 10_000;
const RECOVERABLE_PAUSE_MS = 500;

/**
 * Runs a start-up step, trying again for up to {@link RECOVERABLE_RETRY_MS} while etcd answers
 * with an error etcd3 calls recoverable (an overloaded etcd says "too many requests"): a
 * start-up should wait that out, as it waits for etcd to answer at all. Anything else fails at once.
 */
export async function retryWhileRecoverable<T>(step: () => Promise<T>): Promise<T> {
  const deadline = performance.now() + RECOVERABLE_RETRY_MS;
  for (;;) {
    try {
      return await step();
    } catch (error) {
      if (!(error instanceof Error && isRecoverableError(error)) || performance.now() > deadline) throw error;
      await sleep(RECOVERABLE_PAUSE_MS);
    }
  }
}

/**
 * Every key of one cluster, relative to `/apostate/<cluster>/`. The coordinator election keeps
 * its candidates under `election/coordinator/` (the etcd3 election recipe's layout).
 */
export const CLUSTER_KEYS = {
  map: "map",
  nodes: "nodes/",
  node: (node: string) => `nodes/${node}`,
  moves: "moves/",
  move: (id: string) => `moves/${id}`,
  cursorSecret: "cursor-secret",
  coordinator: "coordinator",
  /** Honoured only by nodes started with APOSTATE_TEST_HOOKS=1: moves wait at this state. */
  testPauseMoves: "test/pause-moves",
  /** Likewise: while this key exists, the node holds back every map change (a stale map, on purpose). */
  testHoldMap: (node: string) => `test/hold-map/${node}`,
} as const;

/** The keys of cluster `cluster`, so no code builds a `/apostate/...` path by hand. */
export function clusterNamespace(etcd: Etcd3, cluster: string): Namespace {
  return etcd.namespace(`/apostate/${cluster}/`);
}

/** etcd sends revisions as decimal strings; ours stay far below 2^53. */
export function modRevision(kv: IKeyValue): number {
  return Number(kv.mod_revision);
}

/**
 * `work`, or a rejection with `timedOut()` once `ms` have passed: etcd's client retries an
 * unreachable server for a long time, and a caller with someone waiting must answer sooner.
 */
export async function withinDeadline<T>(work: Promise<T>, ms: number, timedOut: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(timedOut()), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
