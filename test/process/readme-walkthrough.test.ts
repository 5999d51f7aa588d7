import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTempServer, type ServerProcess } from "../support/server-process.js";

/** The README's curl walk-through, command by command, with the status each line promises. */
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const block = /<!-- walkthrough:start -->([\s\S]*?)<!-- walkthrough:end -->/.exec(readme)?.[1] ?? "";
const steps = block
  .split("\n")
  .filter((line) => line.startsWith("curl "))
  .map((line) => {
    const match = /^(.*)\s+#\s+(\d{3})$/.exec(line);
    if (!match) throw new Error(`walk-through line without an expected status: ${line}`);
    return { command: match[1] as string, status: Number(match[2]) };
  });

let server: ServerProcess;
let stop: () => Promise<void>;
beforeAll(async () => {
  ({ server, stop } = await startTempServer({ workers: 1 }));
});
afterAll(() => stop?.());

describe("README walk-through", () => {
  it("has steps for every /v1 operation", () => {
    for (const method of ["PUT", "PATCH", "POST", "DELETE"]) expect(block).toContain(`-X ${method}`);
    expect(steps.length).toBeGreaterThanOrEqual(15);
  });

  it("answers every command with the status the README gives, in order", () => {
    const answered = steps.map(({ command }) => {
      const localized = command.replaceAll("http://127.0.0.1:8080", server.url);
      const headers = execFileSync("bash", ["-c", `${localized} -s -o /dev/null -D -`], { encoding: "utf8" });
      return Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1]);
    });
    expect(answered).toEqual(steps.map((step) => step.status));
  });
});
