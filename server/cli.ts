#!/usr/bin/env node
import { Command } from "commander";
import { addServeOptions, configProblem, toServeConfig } from "./config.js";
import { createLogger } from "./logger.js";
import { serve } from "./serve.js";
import { DataDirectoryError } from "./storage/storage-errors.js";

const program = new Command("apostate").description("A sharded SQLite entity store with a REST API.");

addServeOptions(program.command("serve").description("serve the REST API from a data directory")).action(
  async (options: Record<string, unknown>, command: Command) => {
    const config = toServeConfig(options);
    const problem = configProblem(config);
    if (problem) command.error(`error: ${problem}`);
    const logger = createLogger();
    try {
      await serve(config, logger);
    } catch (error) {
      if (error instanceof DataDirectoryError) command.error(`error: ${error.message}`);
      throw error;
    }
  },
);

await program.parseAsync();
