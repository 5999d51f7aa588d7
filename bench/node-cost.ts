import { setTimeout as sleep } from "node:timers/promises";
import type { BenchServer } from "./bench-server.js";
import { measure, warmUp, type BenchRequest, type LoadOptions, type Measurement } from "./load.js";
import { profileText, type TimeWindow } from "./profile-summary.js";

/** A server of a bench and the name its CPU is reported under. */
export type Server = { id: string; server: BenchServer };

/** What a scenario's row must say for its profile to be printed. */
export interface CostByNode {
  label: string;
  cpuMicrosPerRequest: number | null;
  /** CPU µs per request of each server's processes. */
  cpuByNode: Record<string, number>;
}

/** A scenario's measured span on the monotonic clock, for the profiles `--profile` has the servers write. */
export interface Measured<Row extends CostByNode = CostByNode> {
  row: Row;
  window: TimeWindow;
  servers: Server[];
}

/** Each server's CPU so far, in seconds (null where /proc is missing). */
const cpuReadings = (servers: Server[]) => servers.map(({ server }) => server.cpuSeconds());

/** Each server's CPU between two readings, in µs, divided by `per`; servers without readings are left out. */
function cpuSpent(servers: Server[], before: (number | null)[], after: (number | null)[], per: number): Record<string, number> {
  return Object.fromEntries(
    servers.flatMap(({ id }, i) => {
      const [start, end] = [before[i], after[i]];
      return start == null || end == null || per === 0 ? [] : [[id, ((end - start) * 1e6) / per]];
    }),
  );
}

/** The CPU each server spends a second with no request to serve (leases, watches, timers), in ms. */
export async function idleCpu(servers: Server[], seconds: number): Promise<Record<string, number>> {
  const before = cpuReadings(servers);
  await sleep(seconds * 1000);
  return cpuSpent(servers, before, cpuReadings(servers), seconds * 1000);
}

/**
 * One scenario sent to `url` after its warm-up: the measurement (CPU of every process of every
 * server together), when it ran, and each server's CPU µs per request.
 */
export async function measureCost(url: string, servers: Server[], requests: () => BenchRequest, load: LoadOptions) {
  await warmUp(url, requests, load);
  const before = cpuReadings(servers);
  const from = monotonicMicros();
  const measurement: Measurement = await measure(url, requests, { ...load, warmupSeconds: 0 }, () => sum(cpuReadings(servers)));
  const window = { from, to: monotonicMicros() };
  const after = cpuReadings(servers);
  const answered = measurement.requestsPerSecond * load.seconds;
  const cpuByNode = cpuSpent(servers, before, after, answered);
  return { measurement, window, cpuByNode };
}

/** The sum of CPU readings, or null when one cannot be read. */
function sum(readings: (number | null)[]): number | null {
  return readings.some((reading) => reading === null)
    ? null
    : readings.reduce<number>((total, reading) => total + (reading ?? 0), 0);
}

const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

/**
 * With `--profile`: each scenario's busy CPU by category on each server that spent at least a
 * tenth of it, in µs per request, from the profiles the servers wrote when they stopped.
 */
export function printProfiles(measured: Measured[]): void {
  for (const { row, window, servers } of measured) {
    for (const { id, server } of servers) {
      const micros = row.cpuByNode[id];
      if (!server.profileDir || micros === undefined || row.cpuMicrosPerRequest === null || micros < row.cpuMicrosPerRequest / 10)
        continue;
      process.stderr.write(`${row.label}, ${id}'s ${profileText(server.profileDir, undefined, [window], micros)}`);
    }
  }
}
