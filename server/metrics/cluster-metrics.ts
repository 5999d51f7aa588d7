import cluster from "node:cluster";
import { AggregatorRegistry, Registry } from "prom-client";

/** What `GET /metrics` answers: Prometheus text, however it is gathered. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

const REQUEST = "apostate:metrics-request";
const RESPONSE = "apostate:metrics-response";
const TIMEOUT_MS = 6_000;

type MetricsRequest = { type: typeof REQUEST; id: number };
type MetricsResponse = { type: typeof RESPONSE; id: number; text?: string; error?: string };

function isMessage<T extends { type: string }>(message: unknown, type: T["type"]): message is T {
  return typeof message === "object" && message !== null && (message as { type?: unknown }).type === type;
}

/** The registries of this one process, rendered one after the other (in-process apps, tests). */
export function localMetrics(registries: Registry[]): MetricsSource {
  return {
    contentType: Registry.PROMETHEUS_CONTENT_TYPE,
    metrics: async () => (await Promise.all(registries.map((registry) => registry.metrics()))).join(""),
  };
}

/**
 * A cluster worker's metrics: the worker offers its registry to the primary's aggregation, and
 * its `/metrics` asks the primary for the whole cluster's figures, since a scrape lands on one
 * worker and must not show that worker's numbers alone.
 */
export function workerMetrics(registry: Registry): MetricsSource {
  AggregatorRegistry.setRegistries([registry]);
  // The constructor installs prom-client's listener that answers the primary's collection requests.
  new AggregatorRegistry();

  let nextId = 0;
  const pending = new Map<number, (response: MetricsResponse) => void>();
  process.on("message", (message: unknown) => {
    if (isMessage<MetricsResponse>(message, RESPONSE)) pending.get(message.id)?.(message);
  });
  return {
    contentType: Registry.PROMETHEUS_CONTENT_TYPE,
    metrics: () =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        const timer = setTimeout(() => settle({ type: RESPONSE, id, error: "the primary did not answer in time" }), TIMEOUT_MS);
        const settle = (response: MetricsResponse) => {
          clearTimeout(timer);
          pending.delete(id);
          if (response.text !== undefined) resolve(response.text);
          else reject(new Error(`cluster metrics unavailable: ${response.error ?? "no answer"}`));
        };
        pending.set(id, settle);
        process.send?.({ type: REQUEST, id } satisfies MetricsRequest);
      }),
  };
}

/**
 * The primary's side: answers a worker's request with every worker's registry aggregated
 * (counters and histograms summed) followed by the primary's own registry (shard gauges and
 * purge counters, which only the primary keeps).
 */
export function answerWorkerMetricsRequests(own: Registry): void {
  const aggregator = new AggregatorRegistry();
  cluster.on("message", (worker, message: unknown) => {
    if (!isMessage<MetricsRequest>(message, REQUEST)) return;
    const reply = (response: MetricsResponse) => {
      if (worker.isConnected()) worker.send(response);
    };
    Promise.all([aggregator.clusterMetrics(), own.metrics()]).then(
      ([workers, primary]) => reply({ type: RESPONSE, id: message.id, text: workers + primary }),
      (error: Error) => reply({ type: RESPONSE, id: message.id, error: error.message }),
    );
  });
}
