#!/usr/bin/env node
import cluster from "node:cluster";

// A worker forked by `apostate serve` loads only what serves HTTP, not the command line.
if (cluster.isWorker) await (await import("./worker-entry.js")).startWorker();
else await (await import("./cli/program.js")).buildProgram().parseAsync();
