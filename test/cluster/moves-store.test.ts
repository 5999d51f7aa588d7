import { describe, expect, it } from "vitest";
import {
  listMoves,
  newMoveId,
  pruneFinishedMoves,
  saveMove,
  type MoveRecord,
  type MoveState,
} from "../../server/cluster/moves-store.js";
import { EtcdClients } from "../support/cluster-etcd.js";

const shared = EtcdClients.forFile();

function record(id: string, state: MoveState): MoveRecord {
  const at = new Date(0).toISOString();
  return {
    id,
    kind: "move",
    shard: 0,
    newShard: null,
    slots: { from: 0, to: 511 },
    from: "n1",
    to: "n2",
    state,
    detail: null,
    createdAt: at,
    updatedAt: at,
  };
}

describe("pruning finished moves", () => {
  it("deletes the oldest finished records beyond the newest ones kept, and never an unfinished one", async () => {
    const { cluster } = shared.clients.connect(shared.clients.newCluster());
    const states: MoveState[] = ["done", "copying", "aborted", "done", "frozen", "done"];
    const ids = states.map((_, i) => newMoveId(1_000 + i));
    for (const [i, state] of states.entries()) await saveMove(cluster, record(ids[i] as string, state), 0);

    const deleted = await pruneFinishedMoves(cluster, await listMoves(cluster), 2);

    expect(deleted).toBe(2);
    const left = (await listMoves(cluster)).map(({ move }) => [move.id, move.state]);
    expect(left).toEqual([
      [ids[1], "copying"],
      [ids[3], "done"],
      [ids[4], "frozen"],
      [ids[5], "done"],
    ]);
    expect(await pruneFinishedMoves(cluster, await listMoves(cluster), 2)).toBe(0);
  });

  it("keeps a record that changed since it was listed", async () => {
    const { cluster } = shared.clients.connect(shared.clients.newCluster());
    const [first, second] = [newMoveId(1_000), newMoveId(2_000)];
    await saveMove(cluster, record(first, "done"), 0);
    await saveMove(cluster, record(second, "done"), 0);
    const listed = await listMoves(cluster);
    // Another coordinator rewrote the older record after this one listed it.
    const older = listed[0]!;
    await saveMove(cluster, { ...older.move, detail: "rewritten" }, older.revision);

    expect(await pruneFinishedMoves(cluster, listed, 1)).toBe(0);

    expect((await listMoves(cluster)).map(({ move }) => move.id)).toEqual([first, second]);
  });
});
