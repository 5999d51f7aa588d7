#!/usr/bin/env node
import { buildProgram } from "./ops/program.js";

await buildProgram().parseAsync();
