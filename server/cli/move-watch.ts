import { setTimeout as sleep } from "node:timers/promises";
import { isFinished, type Move } from "./cluster-output.js";
import { EXIT_CODES } from "./exit-codes.js";
import { OperatorError } from "./operator-admin.js";
import type { Remote } from "./remote-request.js";

export interface MoveWatchOptions {
  pollMs: number;
  /**
   * How long polling goes on while the server does not answer or answers 502-504 (a node
   * restarting, etcd away for a moment) before it gives up with that error.
   */
  patienceMs: number;
  /** Ends the wait early: it then rejects with an AbortError. */
  signal?: AbortSignal;
}

const DEFAULT_OPTIONS: MoveWatchOptions = { pollMs: 250, patienceMs: 30_000 };

/**
 * Polls the moves (and splits) until every one is done or aborted; calls `onChange` with each
 * state a move reaches. Resolves to the moves as they ended, in the order given. The
 * coordinator runs moves one after another, so a rebalance's later moves wait in `copying`.
 *
 * @example
 * const ended = await waitForMoves(admin, started, (move) => console.error(moveLine(move)));
 */
export async function waitForMoves(
  admin: Remote,
  moves: readonly Move[],
  onChange: (move: Move) => void,
  options: Partial<MoveWatchOptions> = {},
): Promise<Move[]> {
  const { pollMs, patienceMs, signal } = { ...DEFAULT_OPTIONS, ...options };
  const latest = new Map(moves.map((move) => [move.id, move]));
  let failingSince: number | undefined;
  for (;;) {
    const running = [...latest.values()].filter((move) => !isFinished(move));
    if (running.length === 0) return [...latest.values()];
    await sleep(pollMs, undefined, { signal });
    try {
      for (const move of running) {
        const now = await admin.call(() => admin.api.GET("/admin/cluster/moves/{move}", { params: { path: { move: move.id } } }));
        if (now.state !== move.state) onChange(now);
        latest.set(move.id, now);
      }
      failingSince = undefined;
    } catch (error) {
      if (!(error instanceof OperatorError) || error.exitCode !== EXIT_CODES.unreachable) throw error;
      failingSince ??= Date.now();
      if (Date.now() - failingSince > patienceMs) throw error;
    }
  }
}
