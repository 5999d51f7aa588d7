import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Many tests start real servers as child processes; two cores take two files at a time.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // A leftover `.only` fails CI instead of silently skipping the rest.
    allowOnly: !process.env.CI,
  },
});
