import { once } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterReport, type ClusterStatus, type Move } from "../../server/cli/cluster-output.js";
import { eventually } from "../support/cluster-etcd.js";
import { freePort } from "../../server/cli/loopback-ports.js";
import { runCli } from "../support/run-cli.js";
import { TestCluster, type ClusterAnswer } from "../support/test-cluster.js";

/*
 * `apostate cluster status|move|split|rebalance` run as the binary against two real nodes on a
 * real etcd, with tokens, one step after another: the tests share the cluster's history.
 */

const ADMIN_TOKEN = "cluster-cli-admin";
const ENV = { APOSTATE_ADMIN_TOKEN: ADMIN_TOKEN };
const STATES = ["copying", "catching-up", "frozen", "switched", "done"];

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 2, shards: 4, adminToken: ADMIN_TOKEN, token: "cluster-cli-data" });
});

afterAll(() => cluster?.destroy());

/** `apostate cluster <args> --url <n1>`, with the admin token from the environment. */
function clusterCli(...args: string[]) {
  return runCli(["cluster", ...args, "--url", cluster.node("n1").url], ENV);
}

/** The states `--wait` reported on stderr, each line checked against what the move is. */
function reportedStates(stderr: string, what: RegExp): string[] {
  const lines = stderr.trimEnd().split("\n");
  for (const line of lines) expect(line).toMatch(what);
  return lines.map((line) => line.slice(line.lastIndexOf(": ") + 2));
}

/** Reported states run forward through a move's steps, from copying to done (polling may miss some). */
function expectForward(states: string[]): void {
  expect(states[0]).toBe("copying");
  expect(states.at(-1)).toBe("done");
  const order = states.map((state) => STATES.indexOf(state));
  expect(order.every((index) => index >= 0)).toBe(true);
  expect(order).toEqual([...order].sort((a, b) => a - b));
}

function shardOf(status: ClusterAnswer, shard: number) {
  return status.shards.find((entry) => entry.shard === shard);
}

describe("apostate cluster status", () => {
  it("prints the nodes, the shards and the moves as a table, and the answer itself with --json", async () => {
    const table = await clusterCli("status");
    expect(table.stderr).toBe("");
    expect(table.code).toBe(0);
    const n1 = cluster.node("n1").url;
    expect(table.stdout).toMatch(/^cluster test: map version \d+, coordinator n[12], answered by n1\n\n/);
    expect(table.stdout).toMatch(new RegExp(`^NODE +ALIVE +URL +SHARDS\\nn1 +yes +${n1} +0,1,2,3\\nn2 +yes +\\S+ +-$`, "m"));
    expect(table.stdout).toMatch(
      /^SHARD +SLOTS +NODE +EPOCH +STATE +FOLLOWERS\n0 +0-1023 +n1 +\d+ +active +-\n1 +1024-2047 +n1 +\d+ +active +-\n/m,
    );
    expect(table.stdout).toMatch(/^3 +3072-4095 +n1 +\d+ +active +-$/m);
    expect(table.stdout.trimEnd().split("\n").at(-1)).toBe("no moves in progress (0 finished)");

    const json = await clusterCli("status", "--json");
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(await cluster.status("n1"));
  });

  it("exits 2 with the token to set when the admin token is wrong, and 3 when nothing answers", async () => {
    const refused = await runCli(["cluster", "status", "--url", cluster.node("n2").url, "--admin-token", "wrong"]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`${cluster.node("n2").url} answered 401 unauthorized`);
    expect(refused.stderr).toContain("(set --admin-token or APOSTATE_ADMIN_TOKEN)");
    const closed = `http://127.0.0.1:${await freePort()}`;
    const unreachable = await runCli(["cluster", "status", "--url", closed], ENV);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain(`error: cannot reach ${closed}: ECONNREFUSED`);
  });
});

describe("apostate cluster move, split and rebalance --wait", () => {
  it("move --wait follows the move to done, each state on stderr, and the map gives the shard to its node", async () => {
    const moved = await clusterCli("move", "--shard", "3", "--to", "n2", "--wait");
    expect(moved.code).toBe(0);
    expect(moved.stdout).toMatch(/^move m-[0-9a-z]+-[0-9a-f]+ of shard 3 from n1 to n2: done\n$/);
    const id = /move (\S+)/.exec(moved.stdout)?.[1] as string;
    expectForward(reportedStates(moved.stderr, new RegExp(`^move ${id} of shard 3 from n1 to n2: [a-z-]+$`)));
    expect(shardOf(await cluster.status("n2"), 3)?.node).toBe("n2");
  }, 90_000);

  it("split --wait --json prints the split as it ended; a new shard holds the upper half on the same node", async () => {
    const split = await clusterCli("split", "--shard", "0", "--wait", "--json");
    expect(split.code).toBe(0);
    expect(JSON.parse(split.stdout)).toMatchObject({ kind: "split", shard: 0, newShard: 4, from: "n1", to: "n1", state: "done" });
    expectForward(reportedStates(split.stderr, /^split m-\S+ of shard 0 on n1 into shards 0 and 4: [a-z-]+$/));
    const status = await cluster.status("n1");
    expect(shardOf(status, 0)).toMatchObject({ slots: { from: 0, to: 511 }, node: "n1" });
    expect(shardOf(status, 4)).toMatchObject({ slots: { from: 512, to: 1023 }, node: "n1" });
  }, 90_000);

  it("rebalance --wait runs the moves that even the nodes out; a second rebalance has none", async () => {
    // n1 holds 0, 1, 2 and 4, n2 holds 3: five shards make three and two, so n1's highest moves.
    const rebalanced = await clusterCli("rebalance", "--wait");
    expect(rebalanced.code).toBe(0);
    expect(rebalanced.stdout).toMatch(/^move m-\S+ of shard 4 from n1 to n2: done\n$/);
    expectForward(reportedStates(rebalanced.stderr, /^move m-\S+ of shard 4 from n1 to n2: [a-z-]+$/));
    const status = await cluster.status("n1");
    expect(status.nodes.map((node) => [node.node, node.shards])).toEqual([
      ["n1", [0, 1, 2]],
      ["n2", [3, 4]],
    ]);

    const again = await clusterCli("rebalance");
    expect(again).toMatchObject({ code: 0, stdout: "the cluster is balanced already: no moves\n" });
    const table = await clusterCli("status");
    expect(table.stdout.trimEnd().split("\n").at(-1)).toBe("no moves in progress (3 finished)");
  }, 90_000);
});

describe("moves the cluster refuses", () => {
  // Refused, so nothing changes: the three run at once.
  it.concurrent.for([
    ["to an unknown node", 2, ["--shard", "1", "--to", "n9"], "answered 400 invalid-body: node n9 is not alive in the cluster"],
    [
      "to the node that owns the shard",
      2,
      ["--shard", "3", "--to", "n2"],
      "answered 400 invalid-body: shard 3 is on node n2 already",
    ],
    ["of a shard the cluster does not have", 4, ["--shard", "9", "--to", "n2"], "answered 404 shard-not-found"],
  ] as const)("a move %s exits %i with the server's reason", async ([, code, args, message], { expect }) => {
    const refused = await clusterCli("move", ...args);
    expect(refused.stderr).toContain(message);
    expect(refused.stdout).toBe("");
    expect(refused.code).toBe(code);
  });

  it("a move to a node that is down exits 2, and status shows the node down with its shards", async () => {
    await cluster.crash("n2");
    await eventually(
      "n2's lease to end",
      async () => !(await cluster.status("n1")).nodes.find((node) => node.node === "n2")?.alive,
      20_000,
    );
    const refused = await clusterCli("move", "--shard", "1", "--to", "n2", "--wait");
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("node n2 is not alive in the cluster");
    const table = await clusterCli("status");
    expect(table.stdout).toMatch(/^n2 +NO +- +3,4$/m);
  });
});

describe("bad usage, before any request", () => {
  it.concurrent.for([
    ["no --to", ["move", "--shard", "1"], "error: required option '--to <node>' not specified"],
    ["a shard that is not a number", ["move", "--shard", "one", "--to", "n2"], "option '--shard <n>' argument 'one' is invalid"],
    ["a node id that cannot be one", ["move", "--shard", "1", "--to", "N2"], "expected a node id"],
    ["no --shard", ["split"], "error: required option '--shard <n>' not specified"],
    ["an option the command does not take", ["rebalance", "--shard", "1"], "error: unknown option '--shard'"],
    ["an unknown command", ["frobnicate"], "error: unknown command 'frobnicate'"],
  ] as const)("exits 2 on %s", async ([, args, message], { expect }) => {
    // Nothing listens at this URL: the command stops before it would ask.
    const { code, stdout, stderr } = await runCli(["cluster", ...args, "--url", "http://127.0.0.1:1"]);
    expect(stderr).toContain(message);
    expect(stdout).toBe("");
    expect(code).toBe(2);
  });
});

describe("a move that is aborted", () => {
  let fake: Server;
  const requests: { method: string; path: string; authorization: string | undefined; body: string }[] = [];

  /** Answers as a node whose move goes copying → (503) → catching-up → aborted. */
  beforeAll(async () => {
    const move = {
      id: "m-00000000a-abcdef",
      kind: "move",
      shard: 1,
      newShard: null,
      from: "n1",
      to: "n2",
      detail: null,
      createdAt: "2026-01-01T00:00:00.000Z",
      updatedAt: "2026-01-01T00:00:00.000Z",
    };
    const polls = [
      {
        status: 503,
        body: { type: "about:blank", title: "Unavailable", status: 503, code: "unavailable", detail: "etcd is away" },
      },
      { status: 200, body: { ...move, state: "catching-up" } },
      { status: 200, body: { ...move, state: "aborted", detail: "stuck at catching-up: node n2 does not answer" } },
    ];
    const body = async (req: IncomingMessage) => {
      let text = "";
      for await (const chunk of req) text += chunk;
      return text;
    };
    let polled = 0;
    fake = createServer(async (req, res) => {
      requests.push({
        method: req.method ?? "",
        path: req.url ?? "",
        authorization: req.headers.authorization,
        body: await body(req),
      });
      const answer =
        req.method === "POST"
          ? { status: 202, body: { ...move, state: "copying" } }
          : polls[Math.min(polled++, polls.length - 1)]!;
      const type = answer.status >= 400 ? "application/problem+json" : "application/json";
      res.writeHead(answer.status, { "content-type": type }).end(JSON.stringify(answer.body));
    });
    fake.listen(0, "127.0.0.1");
    await once(fake, "listening");
  });

  afterAll(() => fake?.close());

  it("--wait waits through a 503, then exits 4 with the reason it was aborted", async () => {
    const { port } = fake.address() as { port: number };
    const aborted = await runCli(
      ["cluster", "move", "--shard", "1", "--to", "n2", "--wait", "--url", `http://127.0.0.1:${port}`],
      ENV,
    );
    const line = "move m-00000000a-abcdef of shard 1 from n1 to n2";
    expect(aborted.stdout).toBe(`${line}: aborted (stuck at catching-up: node n2 does not answer)\n`);
    expect(aborted.stderr.trimEnd().split("\n")).toEqual([
      `${line}: copying`,
      `${line}: catching-up`,
      `${line}: aborted (stuck at catching-up: node n2 does not answer)`,
    ]);
    expect(aborted.code).toBe(4);
    expect(requests[0]).toEqual({
      method: "POST",
      path: "/admin/cluster/moves",
      authorization: `Bearer ${ADMIN_TOKEN}`,
      body: JSON.stringify({ shard: 1, to: "n2" }),
    });
    expect(requests.slice(1).map((request) => `${request.method} ${request.path}`)).toEqual(
      Array.from({ length: 3 }, () => "GET /admin/cluster/moves/m-00000000a-abcdef"),
    );
  });
});

describe("the status table, for answers a quiet cluster does not give", () => {
  const move = (state: Move["state"], detail: string | null): Move => ({
    id: "m-00000000a-abcdef",
    kind: "move",
    shard: 2,
    newShard: null,
    from: "n1",
    to: "n3",
    state,
    detail,
    createdAt: "2026-01-01T00:00:00.000Z",
    updatedAt: "2026-01-01T00:00:00.000Z",
  });
  const status: ClusterStatus = {
    cluster: "prod",
    node: "n2",
    mapVersion: 41,
    coordinator: null,
    nodes: [
      { node: "n1", url: "http://10.0.0.1:8080", alive: true, shards: [0, 2] },
      { node: "n3", url: null, alive: false, shards: [] },
    ],
    shards: [
      {
        shard: 0,
        slots: { from: 0, to: 2047 },
        node: "n1",
        followers: ["n3", "n4"],
        epoch: 7,
        state: "splitting",
        replication: [
          { node: "n3", sequence: null, lag: null, synced: null },
          { node: "n4", sequence: 0, lag: 12, synced: false },
        ],
      },
      {
        shard: 2,
        slots: { from: 2048, to: 4094 },
        node: "n1",
        followers: ["n4"],
        epoch: 9,
        state: "moving",
        replication: [{ node: "n4", sequence: 88, lag: 3, synced: true }],
      },
      { shard: 4, slots: { from: 4095, to: 4095 }, node: "n1", followers: [], epoch: 9, state: "active", replication: [] },
    ],
    moves: [
      move("done", null),
      { ...move("frozen", "waiting for the last 3 changes"), id: "m-00000000b-000001" },
      { ...move("copying", null), id: "m-00000000c-000002", kind: "split", shard: 0, newShard: 3, to: "n1" },
    ],
  };

  it("lists the moves in progress, a split as its shard and the new one, and counts the finished", () => {
    expect(clusterReport(status, "http://10.0.0.2:8080")).toBe(
      [
        "cluster prod: map version 41, coordinator none, answered by n2",
        "",
        "NODE  ALIVE  URL                   SHARDS",
        "n1    yes    http://10.0.0.1:8080  0,2",
        "n3    NO     -                     -",
        "",
        "SHARD  SLOTS      NODE  EPOCH  STATE      FOLLOWERS",
        "0      0-2047     n1    7      splitting  n3 lag ?, n4 seeding",
        "2      2048-4094  n1    9      moving     n4 lag 3",
        "4      4095-4095  n1    9      active     -",
        "",
        "MOVE                KIND   SHARD  FROM  TO  STATE    DETAIL",
        "m-00000000b-000001  move   2      n1    n3  frozen   waiting for the last 3 changes",
        "m-00000000c-000002  split  0→3    n1    n1  copying",
        "(1 finished)",
      ].join("\n"),
    );
  });

  it("says so when the server runs on its own", () => {
    const alone: ClusterStatus = { ...status, cluster: null, node: null, mapVersion: 0, nodes: [], shards: [], moves: [] };
    expect(clusterReport(alone, "http://127.0.0.1:8080")).toBe(
      "http://127.0.0.1:8080 runs on its own, not in a cluster (apostate shards lists its shards)",
    );
  });
});
