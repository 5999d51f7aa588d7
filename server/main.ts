#!/usr/bin/env node
import cluster from "node:cluster";
import { startCommandLine, startWorker } from "./entry.js";

// A worker forked by `apostate serve` loads only what serves HTTP, not the command line.
if (cluster.isWorker) await startWorker();
else await startCommandLine();
