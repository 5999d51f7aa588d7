import type { EntityRow } from "../storage/tables.js";
import { isLive } from "./entity.js";

/** `any` is `*`; a list holds the versions named by the caller's entity tags. */
export type VersionSet = "any" | readonly number[];

/** HTTP's `If-Match` / `If-None-Match`, already reduced to versions by the HTTP layer. */
export interface Preconditions {
  ifMatch?: VersionSet;
  ifNoneMatch?: VersionSet;
}

function matches(set: VersionSet, row: EntityRow | undefined): boolean {
  if (!isLive(row)) return false;
  return set === "any" || set.includes(row.version);
}

/** True when the change may go ahead on the entity as it is (`row`, a tombstone counts as absent). */
export function preconditionsHold({ ifMatch, ifNoneMatch }: Preconditions, row: EntityRow | undefined): boolean {
  if (ifMatch !== undefined && !matches(ifMatch, row)) return false;
  if (ifNoneMatch !== undefined && matches(ifNoneMatch, row)) return false;
  return true;
}
