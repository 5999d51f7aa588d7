import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { EXIT_CODES } from "./exit-codes.js";
import { envWithout, LocalProcess } from "./local-process.js";
import { freePort } from "./loopback-ports.js";
import { OperatorError } from "./operator-admin.js";

const HEALTHY_WITHIN_MS = 30_000;
const STOP_GRACE_MS = 10_000;

/** The executable `program` as the shell would find it on `path`, or undefined. */
export function findOnPath(program: string, path = process.env.PATH ?? ""): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === "") continue;
    const file = join(dir, program);
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Two different free loopback ports: etcd's client and peer ports. */
async function twoFreePorts(): Promise<[number, number]> {
  for (;;) {
    const [a, b] = [await freePort(), await freePort()];
    if (a !== b) return [a, b];
  }
}

async function isHealthy(url: string): Promise<boolean> {
  try {
    const answer = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) });
    return ((await answer.json()) as { health?: string }).health === "true";
  } catch {
    return false;
  }
}

/** The flags of a one-member etcd cluster that listens on loopback and logs only warnings. */
export function singleMemberArguments(member: { name: string; dataDir: string; clientUrl: string; peerUrl: string }): string[] {
  const { name, dataDir, clientUrl, peerUrl } = member;
  return [
    `--name=${name}`,
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=${name}=${peerUrl}`,
    "--initial-cluster-state=new",
    "--logger=zap",
    "--log-level=warn",
  ];
}

/** The local demo's etcd, running. */
export interface LocalEtcd {
  process: LocalProcess;
  /** Its client URL, for `--etcd`. */
  url: string;
}

/**
 * A single-member etcd on free loopback ports, its data in `dataDir`: started again on the same
 * directory, the member comes back with its keys (the cluster's map and moves), whatever ports
 * it gets. Resolves once it answers healthy.
 */
export async function startEtcd(binary: string, dataDir: string, logFile: string): Promise<LocalEtcd> {
  const [clientPort, peerPort] = await twoFreePorts();
  const url = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const etcd = LocalProcess.start(
    "etcd",
    binary,
    singleMemberArguments({ name: "demo", dataDir, clientUrl: url, peerUrl }),
    logFile,
    envWithout("ETCD_"),
  );
  const deadline = Date.now() + HEALTHY_WITHIN_MS;
  while (etcd.running && Date.now() < deadline) {
    if (await isHealthy(url)) return { process: etcd, url };
    await sleep(100);
  }
  await etcd.stop(STOP_GRACE_MS);
  throw new OperatorError(`etcd did not start on ${url}; the end of ${logFile}:\n${etcd.logTail()}`, EXIT_CODES.damaged);
}
