import { afterEach, describe, expect, it } from "vitest";
import { CoordinatorCandidate, currentCoordinator } from "../../server/cluster/coordinator-election.js";
import { EtcdClients, EtcdHolder, eventually } from "../support/cluster-etcd.js";

const TTL_SECONDS = 2;

const shared = EtcdClients.forFile();
const candidates: CoordinatorCandidate[] = [];
const holders: EtcdHolder[] = [];

afterEach(async () => {
  await Promise.all(candidates.splice(0).map((candidate) => candidate.stop()));
  await Promise.all(holders.splice(0).map((holder) => holder.kill()));
});

/** A candidate in this process, with a log of what it was told. */
function candidate(cluster: string, node: string): { candidate: CoordinatorCandidate; events: string[] } {
  const events: string[] = [];
  const started = CoordinatorCandidate.start(shared.clients.connect(cluster).cluster, node, TTL_SECONDS, {
    elected: () => events.push("elected"),
    deposed: () => events.push("deposed"),
  });
  candidates.push(started);
  return { candidate: started, events };
}

describe("the coordinator election", () => {
  it("elects exactly one of several candidates, and names it", async () => {
    const name = shared.clients.newCluster();
    const all = ["n1", "n2", "n3", "n4"].map((node) => ({ node, ...candidate(name, node) }));
    await eventually("someone is elected", () => all.some((c) => c.candidate.isCoordinator));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const elected = all.filter((c) => c.candidate.isCoordinator);
    expect(elected).toHaveLength(1);
    expect(all.map((c) => c.events.length)).toEqual(all.map((c) => (c === elected[0] ? 1 : 0)));
    expect(await currentCoordinator(shared.clients.connect(name).cluster)).toBe(elected[0]!.node);
  });

  it("has no coordinator before anyone campaigns", async () => {
    expect(await currentCoordinator(shared.clients.connect(shared.clients.newCluster()).cluster)).toBeUndefined();
  });

  it("elects a successor within the TTL when the coordinator's process dies", async () => {
    const name = shared.clients.newCluster();
    const leader = await EtcdHolder.start(shared.etcd, name, { campaign: "n1" }, TTL_SECONDS);
    holders.push(leader);
    await eventually("n1 is elected", () => leader.lines.includes("elected"));
    const { candidate: successor, events } = candidate(name, "n2");
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(successor.isCoordinator).toBe(false);
    expect(await currentCoordinator(shared.clients.connect(name).cluster)).toBe("n1");

    await leader.kill();
    const died = Date.now();
    await eventually("n2 is elected", () => successor.isCoordinator, (TTL_SECONDS + 3) * 1_000);
    expect(Date.now() - died).toBeLessThan((TTL_SECONDS + 2) * 1_000);
    expect(events).toEqual(["elected"]);
    expect(await currentCoordinator(shared.clients.connect(name).cluster)).toBe("n2");
  });

  it("hands over at once when the coordinator stops", async () => {
    const name = shared.clients.newCluster();
    const first = candidate(name, "n1");
    await eventually("n1 is elected", () => first.candidate.isCoordinator);
    const second = candidate(name, "n2");
    await first.candidate.stop();
    expect(first.events).toEqual(["elected", "deposed"]);
    const stopped = Date.now();
    await eventually("n2 is elected", () => second.candidate.isCoordinator);
    expect(Date.now() - stopped).toBeLessThan(1_000);
  });
});
