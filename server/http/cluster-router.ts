import type { IncomingMessage, ServerResponse } from "node:http";
import { slotOf } from "../../schema/placement.js";
import type { ClusterState, SlotRoute } from "../cluster/cluster-state.js";
import { ForwardAnswerLostError, OwnerUnreachableError, type Forwarder } from "../cluster/forwarder.js";
import { ProblemError } from "./problems.js";
import { passesOnAnswer, REQUEST_ID_HEADER } from "./request-observer.js";
import type { RouteMatch } from "./route-table.js";

/**
 * Set on a request a node forwards: the owner serves it or refuses it, and never forwards it
 * again, so two nodes whose maps disagree for a moment cannot pass a request back and forth.
 */
const FORWARDED_BY = "apostate-forwarded-by";

/** The request id this node gave the request (its own header name, lower-cased as the forwarder takes names). */
const REQUEST_ID = REQUEST_ID_HEADER.toLowerCase();

const TYPE = /^[a-z][a-z0-9_-]{0,62}$/;
const RETRY_AFTER = { "Retry-After": "1" };

/** The entity key of a request, when its path names one in a valid form; the validator answers the rest. */
function keyOf(match: RouteMatch): { type: string; id: string } | undefined {
  const { paramNames } = match.route;
  const typeAt = paramNames.indexOf("type");
  const idAt = paramNames.indexOf("id");
  if (typeAt < 0 || idAt < 0) return undefined;
  const type = match.values[typeAt] ?? "";
  let id: string;
  try {
    id = decodeURIComponent(match.values[idAt] ?? "");
  } catch {
    return undefined;
  }
  return TYPE.test(type) && id !== "" ? { type, id } : undefined;
}

/**
 * The data plane's routing on a cluster node: a request for an entity whose slot another node
 * owns is forwarded to it in one hop; everything else is served here. Every answer names the
 * map version the node routed by.
 */
export class ClusterRouter {
  constructor(
    readonly state: ClusterState,
    private readonly forwarder: Forwarder,
  ) {}

  /** Names the map version this node routes by on an answer (every `/v1` answer carries it). */
  stampMapVersion(res: ServerResponse): void {
    res.setHeader("Apostate-Map-Version", this.state.versionHeader);
  }

  /**
   * The owner's route when the request names an entity that another node owns, else undefined.
   * On a request another node forwarded here, stamps this node's name as the one that answered
   * it (the forwarding node passes the answer back with it).
   */
  ownerElsewhere(req: IncomingMessage, res: ServerResponse, match: RouteMatch): Extract<SlotRoute, { local: false }> | undefined {
    if (req.headers[FORWARDED_BY] !== undefined) res.setHeader("Apostate-Served-By", this.state.self);
    const key = keyOf(match);
    if (!key) return undefined;
    const route = this.state.route(slotOf(key.type, key.id));
    return route.local ? undefined : route;
  }

  /** Forwards the request to the owner `route` names; resolves once the owner's answer is passed on. */
  async forward(req: IncomingMessage, res: ServerResponse, route: Extract<SlotRoute, { local: false }>): Promise<void> {
    const owner = route.shard.node;
    if (req.headers[FORWARDED_BY] !== undefined) {
      throw new ProblemError("unavailable", `shard ${route.shard.shard} is moving to node ${owner}; try again`, {
        headers: RETRY_AFTER,
      });
    }
    if (route.url === undefined) {
      throw new ProblemError("unavailable", `node ${owner}, which owns shard ${route.shard.shard}, is not reachable`, {
        headers: RETRY_AFTER,
      });
    }
    // The owner logs and counts the request under this node's id for it; this node only what it answers itself.
    const requestId = res.getHeader(REQUEST_ID);
    passesOnAnswer(res, true);
    try {
      await this.forwarder.forward(req, res, route.url, {
        [FORWARDED_BY]: this.state.self,
        ...(typeof requestId === "string" && { [REQUEST_ID]: requestId }),
      });
    } catch (error) {
      passesOnAnswer(res, false);
      if (error instanceof OwnerUnreachableError) {
        throw new ProblemError("unavailable", `node ${owner}, which owns shard ${route.shard.shard}, is not reachable`, {
          headers: RETRY_AFTER,
          cause: error,
        });
      }
      if (error instanceof ForwardAnswerLostError) {
        throw new ProblemError("unavailable", `node ${owner} did not answer; the request may have been applied`, {
          status: 502,
          headers: RETRY_AFTER,
          cause: error,
        });
      }
      throw error;
    }
  }
}
