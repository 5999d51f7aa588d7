import autocannon from "autocannon";

/** One request of a scenario; a scenario makes a new one for every request it sends. */
export interface BenchRequest {
  method: "GET" | "PUT" | "PATCH" | "POST";
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface LoadOptions {
  connections: number;
  seconds: number;
  /** An unmeasured run before the measured one, so both the server's JIT and its caches are warm. */
  warmupSeconds: number;
  /** Requests per second over all connections; unset, each connection sends its next request as soon as it is answered. */
  rate?: number;
}

export interface Measurement {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Socket errors, timeouts and non-2xx answers. */
  errors: number;
  /** Answers by status code, to tell what the errors were. */
  statuses: Record<string, number>;
  /**
   * CPU time the server's workers spent per request, in microseconds. It depends less than
   * req/s on what else the machine runs, so it helps compare scenarios on a busy machine.
   */
  cpuMicrosPerRequest: number | null;
}

/** The unmeasured run that precedes a measured one. */
export async function warmUp(url: string, next: () => BenchRequest, options: LoadOptions): Promise<void> {
  if (options.warmupSeconds > 0) await drive(url, next, { ...options, seconds: options.warmupSeconds });
}

/**
 * Drives `url` with autocannon at a fixed connection count, each request from `next()`, after
 * {@link warmUp}.
 * `cpuSeconds` reads the server's CPU time so far, when it can be read.
 */
export async function measure(
  url: string,
  next: () => BenchRequest,
  options: LoadOptions,
  cpuSeconds: () => number | null,
): Promise<Measurement> {
  await warmUp(url, next, options);
  const cpuBefore = cpuSeconds();
  const result = await drive(url, next, options);
  const cpuAfter = cpuSeconds();
  return {
    requestsPerSecond: result.requests.total / options.seconds,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
    cpuMicrosPerRequest:
      cpuBefore === null || cpuAfter === null || result.requests.total === 0
        ? null
        : ((cpuAfter - cpuBefore) * 1e6) / result.requests.total,
    statuses: Object.fromEntries(
      Object.entries(result.statusCodeStats ?? {}).map(([status, stats]) => [status, stats.count ?? 0]),
    ),
  };
}

function drive(url: string, next: () => BenchRequest, options: LoadOptions): Promise<autocannon.Result> {
  return autocannon({
    url,
    connections: options.connections,
    duration: options.seconds,
    ...(options.rate !== undefined && { overallRate: options.rate }),
    requests: [
      {
        // autocannon builds the raw request from what this returns, once per request sent.
        setupRequest: (defaults) => {
          const request = next();
          return { ...defaults, ...request, headers: { ...defaults.headers, ...request.headers } };
        },
      },
    ],
  });
}
