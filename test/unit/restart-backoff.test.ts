import { describe, expect, it } from "vitest";
import { RestartBackoff, WORKER_RESTART_BACKOFF } from "../../server/restart-backoff.js";

describe("worker restart back-off", () => {
  it("doubles from 100 ms with each quick death, up to 10 s", () => {
    const backoff = new RestartBackoff(WORKER_RESTART_BACKOFF);
    const delays = Array.from({ length: 10 }, () => backoff.next(5));
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
  });

  it("starts again from 100 ms after a worker that lived a minute, not before", () => {
    const backoff = new RestartBackoff(WORKER_RESTART_BACKOFF);
    for (let i = 0; i < 5; i += 1) backoff.next(0);
    expect(backoff.next(59_999)).toBe(3200);
    expect(backoff.next(60_000)).toBe(100);
    expect(backoff.next(10)).toBe(200);
  });
});
