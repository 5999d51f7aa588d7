import cluster from "node:cluster";

/**
 * Runs a bench server as a node cluster, one process per worker sharing one port, the layout
 * apostate serves on. Each worker calls `listen(index)` (0 … workers - 1); the primary prints
 * the JSON line `{"msg":"listening","url":…}` that BenchServer waits for once every worker
 * listens, and stops the workers when it is stopped.
 *
 * @example
 * runCluster(2, () => createServer(handler).listen(0, "127.0.0.1"));
 */
export function runCluster(workers: number, listen: (index: number) => void): void {
  if (!cluster.isPrimary) {
    listen(Number(process.env[WORKER_INDEX]));
    return;
  }
  let listening = 0;
  cluster.on("listening", (_worker, address) => {
    listening += 1;
    if (listening === workers) console.log(JSON.stringify({ msg: "listening", url: `http://127.0.0.1:${address.port}` }));
  });
  const stop = () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGTERM");
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  for (let index = 0; index < workers; index += 1) cluster.fork({ [WORKER_INDEX]: String(index) });
}

const WORKER_INDEX = "BENCH_WORKER_INDEX";
