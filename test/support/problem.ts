import { expect } from "vitest";
import { PROBLEMS } from "../../server/http/problems.js";

type Code = keyof typeof PROBLEMS;

const PROBLEM_CONTENT_TYPE = /^application\/problem\+json(;|$)/;
const STANDARD_MEMBERS = ["type", "title", "status", "code", "detail", "instance"];

/** The members beyond the standard ones that a code carries: always (`required`) or when it has them. */
function extrasOf(code: Code): { required: string[]; optional: string[] } {
  switch (code) {
    case "condition-failed":
      return { required: ["failed", "current"], optional: [] };
    case "version-mismatch":
    case "test-failed":
    case "patch-conflict":
      return { required: ["current"], optional: [] };
    default:
      return { required: [], optional: PROBLEMS[code].status === 400 ? ["errors"] : [] };
  }
}

/**
 * What is wrong with a problem body answered with `status`: exactly the members its code carries,
 * `type`, `title` and `status` as the catalogue says. Empty when nothing is.
 */
export function problemViolations(body: unknown, status: number): string[] {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return [`the problem is not an object`];
  const problem = body as Record<string, unknown>;
  const code = problem.code;
  if (typeof code !== "string" || !Object.hasOwn(PROBLEMS, code)) return [`unknown problem code ${JSON.stringify(code)}`];
  const entry = PROBLEMS[code as Code];
  const { required, optional } = extrasOf(code as Code);
  const violations: string[] = [];
  const expectMember = (name: string, actual: unknown, expected: unknown) => {
    if (actual !== expected) violations.push(`${name} is ${JSON.stringify(actual)}, not ${JSON.stringify(expected)}`);
  };
  expectMember("type", problem.type, `urn:apostate:problem:${code}`);
  expectMember("title", problem.title, entry.title);
  expectMember("status", problem.status, status);
  expectMember(`the status of ${code}`, entry.status, status);
  for (const name of ["detail", "instance"]) {
    if (typeof problem[name] !== "string") violations.push(`${name} is not a string`);
  }
  for (const name of required) if (!(name in problem)) violations.push(`${code} lacks ${name}`);
  const allowed = new Set([...STANDARD_MEMBERS, ...required, ...optional]);
  for (const name of Object.keys(problem)) if (!allowed.has(name)) violations.push(`${code} carries ${name}`);
  return violations;
}

/** A response as supertest or test/support/http.ts gives it, the body parsed. */
interface ProblemResponse {
  status: number;
  body: unknown;
  headers: { "content-type"?: string };
}

/**
 * Asserts an RFC 9457 problem response with the given status and code: its whole body, its
 * content type, and a detail that matches `detail` when given.
 */
export function expectProblem(res: ProblemResponse, status: number, code: string, detail?: string | RegExp): void {
  expect({ status: res.status, code: (res.body as { code?: unknown }).code }).toEqual({ status, code });
  expect(problemViolations(res.body, status), JSON.stringify(res.body)).toEqual([]);
  expect(res.headers["content-type"]).toMatch(PROBLEM_CONTENT_TYPE);
  if (detail !== undefined) expect((res.body as { detail?: unknown }).detail).toMatch(detail);
}
