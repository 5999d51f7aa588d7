import type { Response } from "supertest";
import { expect } from "vitest";

/** Asserts an RFC 9457 problem response with the given status and code. */
export function expectProblem(res: Response, status: number, code: string): void {
  expect({ status: res.status, body: res.body as unknown }).toMatchObject({
    status,
    body: { type: `urn:apostate:problem:${code}`, title: expect.any(String), status, code, detail: expect.any(String) },
  });
  expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
}
