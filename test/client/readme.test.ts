import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, WORKFLOW_TYPE } from "../../client/index.js";
import { startServer } from "../support/client-helpers.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const README_URL = "http://127.0.0.1:8080";
const BUILT = existsSync(join(ROOT, "dist/client/index.js"));
const SKIPPED = BUILT ? "" : " (SKIPPED: dist/ is not built; `npm test` builds it first)";

/** The code of the block between `<!-- name:start -->` and `<!-- name:end -->` in a Markdown file of the repository. */
function block(file: string, name: string): string {
  const markdown = readFileSync(join(ROOT, file), "utf8");
  const marked = new RegExp(`<!-- ${name}:start -->\\s*\`\`\`\\w+\\n([\\s\\S]*?)\`\`\`\\s*<!-- ${name}:end -->`).exec(markdown);
  if (!marked?.[1]) throw new Error(`${file} has no ${name} block`);
  return marked[1];
}

/** What the block's `console.log(...); // <output>` comments promise, one line each. */
function promisedOutput(code: string): string[] {
  return code
    .split("\n")
    .filter((line) => line.includes("console.log(") && line.includes(" // "))
    .map((line) => line.slice(line.lastIndexOf(" // ") + 4));
}

let baseUrl = "";
let stop: () => Promise<void> = async () => {};
beforeAll(async () => {
  const started = await startServer();
  baseUrl = started.server.url;
  stop = started.stop;
});
afterAll(() => stop());

/** Runs README JavaScript as a user would: plain Node ESM from the repository, importing `apostate/client`. */
async function runScript(code: string): Promise<string[]> {
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", code.replaceAll(README_URL, baseUrl)], {
    cwd: ROOT,
  });
  return stdout.trimEnd().split("\n");
}

describe("README ## The client, and docs/design.md's money transfer and workflow on the wire", () => {
  it.skipIf(!BUILT)(`the usage block runs${SKIPPED}`, async () => {
    const output = await runScript(block("README.md", "client-usage"));
    expect(output.at(-1)).toBe("true");
  });

  it.skipIf(!BUILT)(`the transfer example prints what it promises, and the same again on a second run${SKIPPED}`, async () => {
    const code = block("docs/design.md", "client-example");
    const promised = promisedOutput(code);
    expect(promised).toHaveLength(3);
    expect(await runScript(code)).toEqual(promised);
    expect(await runScript(code)).toEqual(promised);
  });

  it.skipIf(!BUILT)(`the curl version of the transfers leaves the state it describes${SKIPPED}`, async () => {
    const { stdout } = await run(
      "bash",
      ["-euo", "pipefail", "-c", block("docs/design.md", "client-curl").replaceAll(README_URL, baseUrl)],
      {
        cwd: ROOT,
      },
    );
    expect(stdout).toContain('"code":"condition-failed"');
    const db = createClient({ baseUrl });
    expect((await db.get("wallet", "alice")).data).toEqual({ balance: 60 });
    expect((await db.get("wallet", "bob")).data).toEqual({ balance: 40 });
    expect((await db.get("wallet", "carol")).data).toEqual({ balance: 0, closed: true });
    expect(await db.get(WORKFLOW_TYPE, "transfer-3")).toMatchObject({ data: { status: "completed", failedStep: null } });
    expect(await db.get(WORKFLOW_TYPE, "transfer-4")).toMatchObject({
      data: { status: "compensated", failedStep: "credit", failure: { code: "condition-failed" } },
    });
  });
});
