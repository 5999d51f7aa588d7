import { CommanderError } from "commander";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildProgram } from "../../server/cli/program.js";
import { ServerProcess } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";
import { createTestApp, type TestApp } from "../support/test-app.js";
import { runCli } from "../support/run-cli.js";

/** Parses `apostate <args>` in this process; resolves to what it printed and how it exited. */
async function parse(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const program = buildProgram();
  let out = "";
  let err = "";
  for (const command of [program, ...program.commands]) {
    command.exitOverride();
    command.configureOutput({ writeOut: (text) => (out += text), writeErr: (text) => (err += text) });
  }
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    await program.parseAsync(["node", "apostate", ...args]);
    return { code: 0, out, err };
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    return { code: error.exitCode, out, err };
  } finally {
    process.env = saved;
  }
}

describe("--help", () => {
  it.each([
    [
      "serve",
      [
        "APOSTATE_DATA_DIR",
        "APOSTATE_HOST",
        "APOSTATE_PORT",
        "APOSTATE_SHARDS",
        "APOSTATE_WORKERS",
        "APOSTATE_DURABILITY",
        "APOSTATE_BODY_LIMIT",
        "APOSTATE_IDEMPOTENCY_RETENTION",
        "APOSTATE_TOKEN",
        "APOSTATE_ADMIN_TOKEN",
      ],
    ],
    ["shards", ["APOSTATE_URL", "APOSTATE_DATA_DIR", "APOSTATE_ADMIN_TOKEN"]],
    ["check", ["APOSTATE_URL", "APOSTATE_DATA_DIR", "APOSTATE_ADMIN_TOKEN", "APOSTATE_SHARD"]],
    ["backup", ["APOSTATE_URL", "APOSTATE_DATA_DIR", "APOSTATE_ADMIN_TOKEN", "APOSTATE_SHARD"]],
  ])("apostate %s --help lists every option with its environment variable", async (command, variables) => {
    const { code, out } = await parse([command, "--help"]);
    expect(code).toBe(0);
    const help = out.replace(/\s+/g, " ");
    expect(help).toContain(`Usage: apostate ${command} [options]`);
    for (const variable of variables) expect(help).toContain(`env: ${variable})`);
  });

  it("the apostate binary lists its commands", async () => {
    const { code, stdout } = await runCli(["--help"]);
    expect(code).toBe(0);
    for (const command of ["serve", "shards", "check", "backup"]) expect(stdout).toMatch(new RegExp(`^  ${command}\\b`, "m"));
  });
});

describe("bad values", () => {
  it.each([
    [["serve", "--port", "70000"], {}, "option '--port <port>' argument '70000' is invalid. expected an integer from 0 to 65535"],
    [["serve", "--workers", "0"], {}, "option '--workers <n>' argument '0' is invalid"],
    [
      ["serve", "--durability", "fast"],
      {},
      "option '--durability <mode>' argument 'fast' is invalid. Allowed choices are process, power.",
    ],
    [["serve", "--body-limit", "lots"], {}, "option '--body-limit <size>' argument 'lots' is invalid"],
    [["serve", "--idempotency-retention", "5"], {}, "expected a duration such as 90s"],
    [["serve"], { APOSTATE_PORT: "http" }, "option '--port <port>' value 'http' from env 'APOSTATE_PORT' is invalid"],
    [["serve", "--host", "10.0.0.1"], {}, "--host 10.0.0.1 is not a loopback address"],
    [
      ["serve", "--port", "0"],
      { APOSTATE_LOG_LEVEL: "loud" },
      'APOSTATE_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, not "loud"',
    ],
    [["check", "--shard", "-1"], {}, "option '--shard <n>' argument '-1' is invalid"],
    [["backup"], { APOSTATE_SHARD: "one" }, "value 'one' from env 'APOSTATE_SHARD' is invalid"],
    [["shards", "--url", "ftp://example.com"], {}, "expected an http or https URL"],
    [["shards", "--bogus"], {}, "unknown option '--bogus'"],
  ])("apostate %j stops with a message naming the value", async (args, env, message) => {
    const { code, err } = await parse(args, env);
    expect(code).not.toBe(0);
    expect(err).toContain(message);
  });

  it("the apostate binary exits 2 (bad usage) on a bad value from the environment", async () => {
    const { code, stderr } = await runCli(["serve"], { APOSTATE_WORKERS: "many" });
    expect(code).toBe(2);
    expect(stderr).toContain("option '--workers <n>' value 'many' from env 'APOSTATE_WORKERS' is invalid");
  });

  it("refuses a directory that is not a data directory, and a server it cannot reach", async () => {
    const empty = tempDir();
    try {
      const notData = await runCli(["shards", "--data-dir", empty.path]);
      expect(notData.code).toBe(2);
      expect(notData.stderr).toContain(`${empty.path} is not an apostate data directory: no manifest.json`);
      const unreachable = await runCli(["shards", "--url", "http://127.0.0.1:9"]);
      expect(unreachable.code).toBe(3);
      expect(unreachable.stderr).toContain("cannot reach http://127.0.0.1:9");
    } finally {
      empty.remove();
    }
  });
});

describe("apostate shards", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ shardCount: 2 });
    for (let i = 0; i < 10; i += 1) await request(t.app).put(`/v1/entities/doc/d${i}`).send({ i }).expect(201);
  });
  afterAll(() => t.close());

  it("prints the figures of a data directory that no server holds", async () => {
    const json = await runCli(["shards", "--json"], { APOSTATE_DATA_DIR: t.dataDir });
    expect(json.code).toBe(0);
    const { shards } = JSON.parse(json.stdout) as { shards: { shard: number; entities: number; sequence: number }[] };
    expect(shards.map((s) => s.shard)).toEqual([0, 1]);
    expect(shards.reduce((sum, s) => sum + s.entities, 0)).toBe(10);
    expect(shards).toEqual(
      (await request(t.app).get("/admin/shards")).body.shards.map((s: object) => ({ ...s, walBytes: expect.any(Number) })),
    );

    const table = await runCli(["shards", "--data-dir", t.dataDir]);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[3]).toMatch(/^total +10 /);
  });

  it("asks the server that holds the data directory, with the admin token", async () => {
    const dir = tempDir();
    const adminToken = "cli-admin-token-123";
    const server = await ServerProcess.start({
      dataDir: dir.path,
      args: ["--token", "cli-data-token-456", "--admin-token", adminToken],
    });
    try {
      const refused = await runCli(["shards", "--data-dir", dir.path]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`${server.url} answered 401 unauthorized`);
      expect(refused.stderr).toContain("--admin-token");
      const listed = await runCli(["shards", "--data-dir", dir.path, "--json"], { APOSTATE_ADMIN_TOKEN: adminToken });
      expect(listed.code).toBe(0);
      expect((JSON.parse(listed.stdout) as { shards: unknown[] }).shards).toHaveLength(8);
      const checked = await runCli(["check", "--url", server.url, "--admin-token", adminToken]);
      expect(checked).toMatchObject({ code: 0 });
      expect(checked.stdout.trimEnd().split("\n")).toEqual(Array.from({ length: 8 }, (_, i) => `shard ${i}: ok`));
    } finally {
      await server.stop();
      dir.remove();
    }
  });
});
