import { Command, CommanderError } from "commander";
import { describe, expect, it } from "vitest";
import { addServeOptions, configProblem, toServeConfig, type ClusterConfig } from "../../server/config.js";

/** Parses `serve` arguments as the CLI does, without serving: the config, or the error message. */
function parse(args: string[], env: NodeJS.ProcessEnv = {}): ClusterConfig | undefined | string {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  let errors = "";
  let config: ClusterConfig | undefined | string = "no action ran";
  const command = addServeOptions(new Command("serve"))
    .exitOverride()
    .configureOutput({ writeErr: (text) => (errors += text), writeOut: () => undefined })
    .action((options: Record<string, unknown>) => {
      config = toServeConfig(options).cluster;
    });
  try {
    command.parse(args, { from: "user" });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    return errors.trim();
  } finally {
    for (const key of Object.keys(env)) delete process.env[key];
    Object.assign(process.env, saved);
  }
  return config;
}

const complete = ["--etcd", "http://127.0.0.1:2379", "--cluster", "prod", "--node", "n1", "--advertise", "http://10.0.0.1:8080"];

describe("cluster options of serve", () => {
  it("are absent by default: the node runs on its own", () => {
    expect(parse([])).toBeUndefined();
  });

  it("take --etcd, --cluster, --node, --advertise, --lease-ttl (default 10 s) and --replicas (default 1)", () => {
    expect(parse(complete)).toEqual({
      etcd: ["http://127.0.0.1:2379"],
      cluster: "prod",
      node: "n1",
      advertise: "http://10.0.0.1:8080",
      leaseTtlSeconds: 10,
      replicas: 1,
    });
    expect(parse([...complete, "--lease-ttl", "2m"])).toMatchObject({ leaseTtlSeconds: 120 });
    expect(parse([...complete, "--replicas", "3"])).toMatchObject({ replicas: 3 });
  });

  it("take several etcd URLs, and normalise each URL to its origin", () => {
    expect(
      parse([...complete, "--etcd", "http://e1:2379, https://e2:2379/", "--advertise", "https://node-1.example:8443/"]),
    ).toMatchObject({ etcd: ["http://e1:2379", "https://e2:2379"], advertise: "https://node-1.example:8443" });
  });

  it("read APOSTATE_<FLAG> from the environment, and a flag wins", () => {
    const env = {
      APOSTATE_ETCD: "http://e:2379",
      APOSTATE_CLUSTER: "c1",
      APOSTATE_NODE: "n2",
      APOSTATE_ADVERTISE: "http://n2:8080",
      APOSTATE_LEASE_TTL: "5s",
      APOSTATE_REPLICAS: "2",
    };
    expect(parse([], env)).toEqual({
      etcd: ["http://e:2379"],
      cluster: "c1",
      node: "n2",
      advertise: "http://n2:8080",
      leaseTtlSeconds: 5,
      replicas: 2,
    });
    expect(parse(["--node", "n3"], env)).toMatchObject({ node: "n3" });
  });

  const refused: [string, string[], string][] = [
    ["--etcd alone", ["--etcd", "http://e:2379"], "error: --etcd also needs --cluster, --node, --advertise"],
    ["--etcd without --advertise", complete.slice(0, 6), "error: --etcd also needs --advertise"],
    ["--node without --etcd", ["--node", "n1"], "error: --node only makes sense with --etcd"],
    [
      "--cluster and --advertise without --etcd",
      ["--cluster", "c", "--advertise", "http://a"],
      "error: --cluster, --advertise only make sense with --etcd",
    ],
    ["an upper-case node id", [...complete, "--node", "N1"], "--node <id>' argument 'N1' is invalid. expected a node id"],
    ["a node id starting with -", [...complete, "--node=-n"], "expected a node id"],
    ["a node id of 33 characters", [...complete, "--node", "n".repeat(33)], "expected a node id"],
    ["a cluster name with a slash", [...complete, "--cluster", "a/b"], "expected a cluster name"],
    ["an empty cluster name", [...complete, "--cluster", ""], "expected a cluster name"],
    ["an etcd URL without a scheme", [...complete, "--etcd", "127.0.0.1:2379"], "expected comma-separated etcd client URLs"],
    ["an empty etcd URL in the list", [...complete, "--etcd", "http://e:2379,"], "expected comma-separated etcd client URLs"],
    ["an etcd URL with a path", [...complete, "--etcd", "http://e:2379/v3"], "expected comma-separated etcd client URLs"],
    ["an advertised URL with a path", [...complete, "--advertise", "http://n1:8080/v1"], "expected the URL to advertise"],
    ["an advertised URL with a password", [...complete, "--advertise", "http://u:p@n1:8080"], "expected the URL to advertise"],
    ["an advertised ftp URL", [...complete, "--advertise", "ftp://n1"], "expected the URL to advertise"],
    ["a lease TTL of 1 s", [...complete, "--lease-ttl", "1s"], "expected whole seconds from 2s to 1h"],
    ["a lease TTL of 1500 ms", [...complete, "--lease-ttl", "1500ms"], "expected whole seconds from 2s to 1h"],
    ["a lease TTL of 2 h", [...complete, "--lease-ttl", "2h"], "expected whole seconds from 2s to 1h"],
    ["a lease TTL without a unit", [...complete, "--lease-ttl", "10"], "expected a duration such as 90s"],
    ["4 replicas", [...complete, "--replicas", "4"], "--replicas <n>' argument '4' is invalid. expected an integer from 1 to 3"],
    ["0 replicas", [...complete, "--replicas", "0"], "expected an integer from 1 to 3"],
  ];
  it.each(refused)("refuse %s, naming the problem", (_, args, message) => {
    expect(parse(args)).toContain(message);
  });
});

describe("serve with the cluster options", () => {
  it("accepts a complete set as a cluster node's configuration", () => {
    let problem: string | undefined = "no action ran";
    let config: ReturnType<typeof toServeConfig> | undefined;
    addServeOptions(new Command("serve"))
      .exitOverride()
      .action((options: Record<string, unknown>) => {
        config = toServeConfig(options);
        problem = configProblem(config);
      })
      .parse(complete, { from: "user" });
    expect(problem).toBeUndefined();
    expect(config?.cluster).toMatchObject({ cluster: expect.any(String), node: expect.any(String) });
  });
});
