import { Counter, Histogram, type Registry } from "prom-client";

/** One finished request, as the metrics see it. */
export interface RequestObservation {
  method: string;
  /** The route template from openapi.yaml, never the raw path, so labels stay few. */
  route: string;
  status: number;
  seconds: number;
  /** Answered from an idempotency record (`Idempotent-Replayed: true`). */
  replayed: boolean;
}

/** Request latencies from a fraction of a millisecond (a cached read) to seconds (a busy shard). */
const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The request metrics of one process. In a cluster, every worker keeps its own and the primary
 * sums them (prom-client's default aggregation for counters and histograms).
 */
export class HttpMetrics {
  private readonly requests: Counter<"method" | "route" | "status">;
  private readonly latency: Histogram<"method" | "route" | "status">;
  private readonly replays: Counter<"method" | "route">;

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: "apostate_http_requests_total",
      help: "HTTP requests answered, by method, route template and status.",
      labelNames: ["method", "route", "status"],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: "apostate_http_request_duration_seconds",
      help: "Time from a request's arrival to the end of its response, by method, route template and status.",
      labelNames: ["method", "route", "status"],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers: [registry],
    });
    this.replays = new Counter({
      name: "apostate_idempotent_replays_total",
      help: "Mutations answered from their idempotency record instead of being applied again.",
      labelNames: ["method", "route"],
      registers: [registry],
    });
  }

  observe({ method, route, status, seconds, replayed }: RequestObservation): void {
    const labels = { method, route, status: String(status) };
    this.requests.inc(labels);
    this.latency.observe(labels, seconds);
    if (replayed) this.replays.inc({ method, route });
  }
}
