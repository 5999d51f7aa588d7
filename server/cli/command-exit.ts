import type { Command } from "commander";
import type { ExitCode } from "./exit-codes.js";
import type { CommandResult } from "./operator-commands.js";

/** Stops with `error: <message>` and the exit code; `apostate.` codes keep their exit code (see program.ts). */
export function fail(command: Command, message: string, exitCode: ExitCode): never {
  command.error(`error: ${message}`, { exitCode, code: "apostate.error" });
}

/** Prints a command's output on stdout and sets its exit code. */
export function print({ output, exitCode }: CommandResult): void {
  if (output) process.stdout.write(`${output}\n`);
  process.exitCode = exitCode;
}
