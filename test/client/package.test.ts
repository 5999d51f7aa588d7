import { execFile } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../support/temp-dir.js";
import { startServer } from "../support/client-helpers.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const GENERATED = "client/generated/openapi.ts";
const BUILT = existsSync(join(ROOT, "dist/client/index.js"));

describe("generated types", () => {
  const dir = tempDir("apostate-openapi-");
  afterAll(() => dir.remove());

  /**
   * Runs the project's own `check:generated` command (so the test cannot drift from it) with the
   * given spec, against a copy of the committed types: the check only reads, but the working
   * tree is shared, so nothing here points at the real file.
   */
  async function checkGenerated(spec: string): Promise<{ ok: boolean; output: string }> {
    const scripts = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
    const command = scripts["check:generated"] ?? "";
    expect(command).toContain("--check");
    const output = join(dir.path, "openapi.ts");
    copyFileSync(join(ROOT, GENERATED), output);
    const args = command
      .split(/\s+/)
      .slice(1)
      .map((arg) => (arg === "openapi.yaml" ? spec : arg === GENERATED ? output : arg));
    try {
      const { stdout, stderr } = await run(join(ROOT, "node_modules/.bin/openapi-typescript"), args, { cwd: ROOT });
      return { ok: true, output: stdout + stderr };
    } catch (error) {
      const { stdout, stderr } = error as { stdout: string; stderr: string };
      return { ok: false, output: stdout + stderr };
    }
  }

  it("passes when client/generated matches openapi.yaml", async () => {
    const result = await checkGenerated(join(ROOT, "openapi.yaml"));
    expect(result.ok, result.output).toBe(true);
  });

  it("fails when openapi.yaml changed and the types were not regenerated", async () => {
    const spec = readFileSync(join(ROOT, "openapi.yaml"), "utf8");
    const entityVersion = "        version: { type: integer, minimum: 1 }\n";
    expect(spec).toContain(entityVersion);
    const stale = join(dir.path, "openapi.yaml");
    writeFileSync(stale, spec.replace(entityVersion, `${entityVersion}        etag: { type: string }\n`));
    const result = await checkGenerated(stale);
    expect(result.ok, result.output).toBe(false);
    expect(result.output).toMatch(/not up-to-date/);
  });
});

describe("the apostate/client package entry", () => {
  let baseUrl = "";
  let stop: () => Promise<void> = async () => {};
  beforeAll(async () => {
    if (!BUILT) return;
    const started = await startServer();
    baseUrl = started.server.url;
    stop = started.stop;
  });
  afterAll(() => stop());

  it.skipIf(!BUILT)(
    `imports from plain Node ESM${BUILT ? "" : " (SKIPPED: dist/ is not built; `npm test` builds it first)"}`,
    async () => {
      const script = `
        import { createClient, EntityNotFoundError, ProblemError, WorkflowError } from "apostate/client";
        const db = createClient({ baseUrl: process.env.APOSTATE_URL });
        const created = await db.put("pkg", "one", { ok: true });
        const missing = await db.get("pkg", "none").catch((error) => error);
        console.log(JSON.stringify({
          version: created.version,
          notFound: missing instanceof EntityNotFoundError && missing instanceof ProblemError,
          code: missing.code,
          workflowError: typeof WorkflowError,
        }));
      `;
      const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
        cwd: ROOT,
        env: { ...process.env, APOSTATE_URL: baseUrl },
      });
      expect(JSON.parse(stdout)).toEqual({ version: 1, notFound: true, code: "entity-not-found", workflowError: "function" });
    },
  );
});
