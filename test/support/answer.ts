import type { Response } from "supertest";

/** Headers that differ between any two answers (or, for the replay marker, that a replay adds). */
const PER_ANSWER_HEADERS = new Set(["date", "connection", "keep-alive", "x-request-id", "idempotent-replayed"]);

/**
 * What a client can observe of an answer, minus what differs between any two answers: a replay
 * must give back exactly this (status, every header, the body's bytes) of the first answer.
 */
export function answerOf(res: Response): { status: number; headers: Record<string, unknown>; text: string } {
  const headers = Object.fromEntries(Object.entries(res.headers).filter(([name]) => !PER_ANSWER_HEADERS.has(name)));
  return { status: res.status, headers, text: res.text };
}
