import { setTimeout as sleep } from "node:timers/promises";
import type { Campaign, Namespace } from "etcd3";
import { CLUSTER_KEYS } from "./etcd-client.js";

const RECAMPAIGN_DELAY_MS = 1_000;

export interface CoordinatorListeners {
  /** This node became the coordinator: start running moves, rebalancing and failover. */
  elected: () => void;
  /** This node lost the office (its lease ended): stop coordinating at once. */
  deposed: () => void;
}

/**
 * This node's campaign for `coordinator` with etcd's election API: at most one campaigner is
 * elected at a time; when the winner's lease ends (it died, or lost etcd for longer than the
 * TTL), the next campaigner in line is elected. A deposed node campaigns again until `stop()`.
 *
 * @example
 * const candidate = CoordinatorCandidate.start(cluster, "n1", 10, { elected, deposed });
 * await candidate.stop(); // resigns, so a successor is elected at once
 */
export class CoordinatorCandidate {
  private campaign: Campaign | undefined;
  private elected = false;
  private stopped = false;

  private constructor(
    private readonly cluster: Namespace,
    private readonly node: string,
    private readonly ttlSeconds: number,
    private readonly listeners: CoordinatorListeners,
  ) {}

  static start(cluster: Namespace, node: string, ttlSeconds: number, listeners: CoordinatorListeners) {
    const candidate = new CoordinatorCandidate(cluster, node, ttlSeconds, listeners);
    candidate.run();
    return candidate;
  }

  get isCoordinator(): boolean {
    return this.elected;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.depose();
    await this.campaign?.resign().catch(() => undefined);
  }

  private run(): void {
    const campaign = this.cluster.election(CLUSTER_KEYS.coordinator, this.ttlSeconds).campaign(this.node);
    this.campaign = campaign;
    campaign.on("elected", () => {
      if (this.stopped || this.campaign !== campaign) return;
      this.elected = true;
      this.listeners.elected();
    });
    campaign.on("error", () => void this.retry(campaign));
  }

  private async retry(failed: Campaign): Promise<void> {
    if (this.campaign !== failed) return;
    this.depose();
    await failed.resign().catch(() => undefined);
    await sleep(RECAMPAIGN_DELAY_MS);
    if (!this.stopped) this.run();
  }

  private depose(): void {
    if (!this.elected) return;
    this.elected = false;
    this.listeners.deposed();
  }
}

/** The coordinator's node id, or undefined while there is none. */
export async function currentCoordinator(cluster: Namespace): Promise<string | undefined> {
  return cluster.election(CLUSTER_KEYS.coordinator).leader();
}
