import { execFile } from "node:child_process";
import { cpSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const NPM = "npm";
/** Packing builds, and installing compiles better-sqlite3 when no prebuilt binary is at hand. */
const INSTALL_TIMEOUT_MS = 20 * 60_000;

/** What the copy to pack from leaves out: builds, installs, data and git (as .gitignore does). */
const BUILT_OR_LOCAL = /^(\.git|node_modules|dist|data|bench\/results|client\/(dist|node_modules|LICENSE))(\/|$)/;

const rootPackage = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };

/**
 * What a user gets from `npm pack`: both packages installed from their tarballs into an empty
 * project, then used as a user would, through `npx apostate` and `import "apostate-client"`.
 */
describe("the packages, installed from their tarballs into an empty project", () => {
  const packs = tempDir("apostate-packs-");
  const project = tempDir("apostate-project-");
  const data = tempDir("apostate-package-data-");
  let server: ServerProcess | undefined;

  const source = tempDir("apostate-source-");

  beforeAll(async () => {
    // Packed from a copy: the packages' prepack scripts delete and rebuild dist/, which the test
    // files running beside this one start their servers from.
    cpSync(ROOT, source.path, { recursive: true, filter: (path) => !BUILT_OR_LOCAL.test(relative(ROOT, path)) });
    symlinkSync(join(ROOT, "node_modules"), join(source.path, "node_modules"), "dir");
    await run(NPM, ["pack", "--pack-destination", packs.path], { cwd: source.path, timeout: INSTALL_TIMEOUT_MS });
    await run(NPM, ["pack", "--pack-destination", packs.path], { cwd: join(source.path, "client"), timeout: INSTALL_TIMEOUT_MS });
    writeFileSync(join(project.path, "package.json"), JSON.stringify({ name: "user-project", private: true, type: "module" }));
    const tarballs = readdirSync(packs.path).map((file) => join(packs.path, file));
    // --offline cannot resolve the packuments (package metadata) that npm's cache does not
    // hold, so this prefers the cache and asks the registry only for what is missing.
    await run(NPM, ["install", "--prefer-offline", "--no-audit", "--no-fund", ...tarballs], {
      cwd: project.path,
      timeout: INSTALL_TIMEOUT_MS,
    });
  }, INSTALL_TIMEOUT_MS * 2);
  afterAll(async () => {
    await server?.stop();
    for (const dir of [source, packs, project, data]) dir.remove();
  });

  it("packs the built code, the API description, README and LICENSE, and no tests or sources", () => {
    expect(readdirSync(packs.path).sort()).toEqual([
      `apostate-${rootPackage.version}.tgz`,
      `apostate-client-${rootPackage.version}.tgz`,
    ]);
    const installed = join(project.path, "node_modules/apostate");
    expect(readdirSync(installed).sort()).toEqual(["LICENSE", "README.md", "dist", "openapi.yaml", "package.json"]);
    expect(readdirSync(join(installed, "dist")).sort()).toEqual(["client", "openapi.json", "openapi.yaml", "schema", "server"]);
  });

  it("npx apostate --version prints the version", async () => {
    const { stdout } = await run("npx", ["--no-install", "apostate", "--version"], { cwd: project.path });
    expect(stdout).toBe(`${rootPackage.version}\n`);
  });

  it("apostate-client needs nothing but openapi-fetch, and nothing of node", () => {
    const client = join(project.path, "node_modules/apostate-client");
    const manifest = JSON.parse(readFileSync(join(client, "package.json"), "utf8")) as {
      version: string;
      dependencies: Record<string, string>;
    };
    expect(manifest.version).toBe(rootPackage.version);
    expect(Object.keys(manifest.dependencies)).toEqual(["openapi-fetch"]);
    const modules = readdirSync(join(client, "dist"), { recursive: true, encoding: "utf8" }).filter((name) =>
      name.endsWith(".js"),
    );
    // The client's entry and the placement function it shares with the server, at least.
    expect(modules).toEqual(expect.arrayContaining([join("client", "index.js"), join("schema", "placement.js")]));
    for (const file of modules) {
      expect(readFileSync(join(client, "dist", file), "utf8"), file).not.toMatch(/from "node:|require\(/);
    }
    expect(readdirSync(client).sort()).toEqual(["LICENSE", "dist", "package.json"]);
  });

  it("npx apostate serve serves, and a script importing apostate-client writes and reads an entity", async () => {
    server = await ServerProcess.start({
      command: ["npx", "--no-install", "apostate", "serve"],
      cwd: project.path,
      dataDir: data.path,
    });
    writeFileSync(
      join(project.path, "use-client.mjs"),
      `import { createClient, EntityNotFoundError } from "apostate-client";
import { createClient as fromServerPackage } from "apostate/client";
const db = createClient({ baseUrl: process.env.APOSTATE_URL });
const written = await db.put("installed", "one", { ok: true });
const read = await db.get("installed", "one");
const missing = await db.get("installed", "none").catch((error) => error instanceof EntityNotFoundError);
console.log(JSON.stringify({ written: written.version, read: read.data, missing, same: typeof fromServerPackage }));
`,
    );
    const { stdout } = await run(process.execPath, ["use-client.mjs"], {
      cwd: project.path,
      env: { ...process.env, APOSTATE_URL: server.url },
    });
    expect(JSON.parse(stdout)).toEqual({ written: 1, read: { ok: true }, missing: true, same: "function" });
    const docs = await fetch(`${server.url}/docs`);
    expect(docs.status).toBe(200);
    // The dashboard's files are not TypeScript: the build copies them into the package.
    for (const path of ["/ui", "/ui/dashboard.js", "/ui/dashboard.css"]) {
      expect((await fetch(`${server.url}${path}`)).status, path).toBe(200);
    }
  });
});
