import { expect } from "vitest";

/** A response as supertest or test/support/http.ts gives it, the body parsed. */
interface ProblemResponse {
  status: number;
  body: unknown;
  headers: { "content-type"?: string };
}

/**
 * Asserts an RFC 9457 problem response: the whole body, with the given status and code, and a
 * detail that matches `detail` when given.
 */
export function expectProblem(res: ProblemResponse, status: number, code: string, detail?: string | RegExp): void {
  expect({ status: res.status, body: res.body }).toMatchObject({
    status,
    body: {
      type: `urn:apostate:problem:${code}`,
      title: expect.any(String),
      status,
      code,
      detail: detail === undefined ? expect.any(String) : typeof detail === "string" ? detail : expect.stringMatching(detail),
    },
  });
  expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
}
