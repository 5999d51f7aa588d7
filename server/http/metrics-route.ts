import type { operations } from "../../client/generated/openapi.js";
import type { MetricsSource } from "../metrics/cluster-metrics.js";
import type { ControlHandler } from "./control-plane.js";
import { ProblemError } from "./problems.js";

/** `GET /metrics`: Prometheus text exposition, for the whole server (every worker). */
export function metricsHandlers(source: MetricsSource) {
  return {
    metrics: async (_req, res) => {
      let text: string;
      try {
        text = await source.metrics();
      } catch (error) {
        throw new ProblemError("unavailable", "the metrics could not be gathered", {
          headers: { "Retry-After": "1" },
          cause: error,
        });
      }
      res.type(source.contentType).send(text);
    },
  } satisfies Partial<Record<keyof operations, ControlHandler>>;
}
