import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { slotOf } from "../../schema/placement.js";
import { OperatorError } from "../../server/cli/operator-admin.js";
import { toRemoteConfig, type RemoteConfig } from "../../server/cli/operator-options.js";
import {
  deleteCommand,
  getCommand,
  keysCommand,
  locateCommand,
  parseEntityData,
  putCommand,
  remoteServer,
  type RemoteServer,
} from "../../server/cli/remote-commands.js";
import { runCli } from "../support/run-cli.js";
import { startTempServer, type TempServer } from "../support/server-process.js";
import { tempDir } from "../support/temp-dir.js";

const DATA_TOKEN = "cli-data-token";
const ADMIN_TOKEN = "cli-admin-token";
const TOKENS = { APOSTATE_TOKEN: DATA_TOKEN, APOSTATE_ADMIN_TOKEN: ADMIN_TOKEN };

/*
 * Each run of the binary costs seconds on a loaded machine, so the binary is run for what only
 * it shows (exit codes, stdin, --version, --help) and the commands' logic is driven in-process
 * against the same real server.
 */

/** A port on which nothing listens: bound by the system, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The exit code and message a command stops with. */
async function failure(promise: Promise<unknown>): Promise<{ exitCode: number; message: string }> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!(error instanceof OperatorError)) throw new Error(`expected an OperatorError, got ${String(error)}`);
  return { exitCode: error.exitCode, message: error.message };
}

describe("the apostate binary", () => {
  it("--version prints package.json's version; --help lists the exit codes and the commands", async () => {
    const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    expect(await runCli(["--version"])).toEqual({ code: 0, stdout: `${version}\n`, stderr: "" });
    const { code, stdout } = await runCli(["--help"]);
    expect(code).toBe(0);
    for (const line of [/^ {2}1 {2}damaged data/m, /^ {2}2 {2}bad usage/m, /^ {2}3 {2}unreachable/m, /^ {2}4 {2}refused/m]) {
      expect(stdout).toMatch(line);
    }
    for (const command of ["get", "put", "delete", "locate", "keys"]) expect(stdout).toMatch(new RegExp(`^  ${command}\\b`, "m"));
  });

  it.each([
    ["an unknown command", ["bogus"], "unknown command 'bogus'"],
    ["data that is not JSON", ["put", "a", "b", "{nope", "--url", "http://127.0.0.1:1"], "the data is not JSON"],
  ])("exits 2 on bad usage: %s", async (_name, args, message) => {
    const { code, stderr } = await runCli(args);
    expect(stderr).toContain(message);
    expect(code).toBe(2);
  });

  it("exits 3 when nothing listens at --url", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const { code, stderr } = await runCli(["get", "a", "b", "--url", url]);
    expect(stderr).toContain(`error: cannot reach ${url}: ECONNREFUSED`);
    expect(code).toBe(3);
  });
});

describe("bad usage, found before any request", () => {
  it.each([
    ["data that is not JSON", "{nope", "the data is not JSON"],
    ["data that is an array", "[1]", "the data must be a JSON object"],
    ["data that is a string", '"x"', "the data must be a JSON object"],
    ["data that is null", "null", "the data must be a JSON object"],
  ])("%s", async (_name, text, message) => {
    expect(await failure(Promise.resolve().then(() => parseEntityData(text)))).toEqual({
      exitCode: 2,
      message: expect.stringContaining(message),
    });
  });

  it("a data directory that no server holds, for a command that needs a server: 3", async () => {
    const dir = tempDir();
    try {
      expect(await failure(Promise.resolve().then(() => toRemoteConfig({ dataDir: dir.path, json: false })))).toEqual({
        exitCode: 3,
        message: `no server is running on ${dir.path}: give --url (or APOSTATE_URL)`,
      });
    } finally {
      dir.remove();
    }
  });
});

describe("quick looks at a running server", () => {
  let t: TempServer;
  let url: string;
  let config: RemoteConfig;
  let server: RemoteServer;
  beforeAll(async () => {
    t = await startTempServer({ args: ["--shards", "4", "--token", DATA_TOKEN, "--admin-token", ADMIN_TOKEN] });
    url = t.server.url;
    // Found through the data directory the server holds, as without --url.
    config = toRemoteConfig({ dataDir: t.dataDir, token: DATA_TOKEN, adminToken: ADMIN_TOKEN, json: false });
    server = remoteServer(config);
  });
  afterAll(() => t.stop());

  it("finds the server that holds the data directory", () => {
    expect(config.url).toBe(url);
  });

  it("put, get, put with preconditions, delete", async () => {
    const created = await putCommand(server, "account", "alice", { balance: 100 }, {});
    expect(created.exitCode).toBe(0);
    expect(JSON.parse(created.output)).toMatchObject({ type: "account", id: "alice", version: 1, data: { balance: 100 } });

    // The binary, with the data on stdin.
    const piped = await runCli(["put", "account", "alice", "--data-dir", t.dataDir, "--if-match", "1"], TOKENS, '{"balance":90}');
    expect(piped.stderr).toBe("");
    expect(piped.code).toBe(0);
    expect(JSON.parse(piped.stdout)).toMatchObject({ version: 2, data: { balance: 90 } });

    const read = await getCommand(server, "account", "alice");
    expect(JSON.parse(read.output)).toMatchObject({ version: 2, data: { balance: 90 } });

    expect(await failure(putCommand(server, "account", "alice", {}, { ifMatch: 1 }))).toEqual({
      exitCode: 4,
      message: expect.stringContaining(`${url} answered 412 version-mismatch`),
    });
    expect(await failure(putCommand(server, "account", "alice", {}, { ifNoneMatch: true }))).toEqual({
      exitCode: 4,
      message: expect.stringContaining("412 version-mismatch"),
    });

    expect(await deleteCommand(server, "account", "alice", { ifMatch: 2 })).toEqual({
      exitCode: 0,
      output: "deleted account/alice",
    });
    expect(await failure(getCommand(server, "account", "alice"))).toEqual({
      exitCode: 4,
      message: expect.stringContaining("404 entity-not-found"),
    });
    // The binary: a refusal exits 4 and prints nothing on stdout.
    const gone = await runCli(["get", "account", "alice", "--url", url], TOKENS);
    expect(gone).toMatchObject({ code: 4, stdout: "" });
    expect(gone.stderr).toContain("404 entity-not-found");
  });

  it("a missing or wrong token is bad usage, naming the option to set", async () => {
    const anonymous = remoteServer({ ...config, token: undefined, adminToken: DATA_TOKEN });
    expect(await failure(getCommand(anonymous, "account", "alice"))).toEqual({
      exitCode: 2,
      message: expect.stringMatching(/answered 401 unauthorized: .*\(set --token or APOSTATE_TOKEN\)$/),
    });
    expect(await failure(locateCommand(anonymous, config, "account", "alice"))).toEqual({
      exitCode: 2,
      message: expect.stringContaining("(set --admin-token or APOSTATE_ADMIN_TOKEN)"),
    });
  });

  it("a bad key is bad usage", async () => {
    expect(await failure(getCommand(server, "Bad Type", "x"))).toEqual({
      exitCode: 2,
      message: expect.stringContaining("answered 400"),
    });
  });

  it("locate prints the slot and the shard of a key", async () => {
    const slot = slotOf("order", "o-1");
    const shard = Math.floor(slot / 1024);
    expect(await locateCommand(server, config, "order", "o-1")).toEqual({
      exitCode: 0,
      output: `order/o-1: slot ${slot}, shard ${shard} (no such entity)`,
    });
    await putCommand(server, "order", "o-1", {}, {});
    const json = await locateCommand(server, { ...config, json: true }, "order", "o-1");
    expect(JSON.parse(json.output)).toEqual({ type: "order", id: "o-1", slot, shard, exists: true });
  });

  it("keys lists the ids of a type, page after page, or the keys in one shard", async () => {
    const ids = Array.from({ length: 1203 }, (_, i) => `k${String(i).padStart(4, "0")}`);
    for (const id of ids) await putCommand(server, "key", id, { i: 1 }, {});

    // More than one page of 1000.
    const all = await keysCommand(server, config, { type: "key" }, undefined);
    expect(all).toEqual({ exitCode: 0, output: ids.map((id) => `key/${id}`).join("\n") });
    const some = await keysCommand(server, { ...config, json: true }, { type: "key", prefix: "k120" }, undefined);
    expect(JSON.parse(some.output)).toEqual({ keys: ["k1200", "k1201", "k1202"].map((id) => ({ type: "key", id })) });
    expect((await keysCommand(server, config, { type: "key" }, 3)).output).toBe("key/k0000\nkey/k0001\nkey/k0002");
    expect((await keysCommand(server, config, { type: "key" }, 1001)).output.split("\n")).toHaveLength(1001);
    expect(await keysCommand(server, config, { type: "nothing" }, undefined)).toEqual({ exitCode: 0, output: "" });

    const shard = Math.floor(slotOf("key", "k0005") / 1024);
    const inShard = await keysCommand(server, config, { shard }, undefined);
    const expected = ids.filter((id) => Math.floor(slotOf("key", id) / 1024) === shard).map((id) => `key/${id}`);
    expect(inShard.output.split("\n").filter((line) => line.startsWith("key/"))).toEqual(expected);
    expect(await failure(keysCommand(server, config, { shard: 9 }, undefined))).toEqual({
      exitCode: 4,
      message: expect.stringContaining("answered 404"),
    });
  });
});
