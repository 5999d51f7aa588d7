import { describe, expect, it } from "vitest";
import type { ConditionFailedError } from "../../client/index.js";
import {
  PatchConflictError,
  ProblemError,
  ProblemWithCurrentError,
  TestFailedError,
  VersionMismatchError,
  type Problem,
  type ProblemCode,
} from "../../client/index.js";
import { PROBLEMS } from "../../server/http/problems.js";

/*
 * Every problem code the server can answer (its catalogue, which openapi.yaml documents code for
 * code: test/unit/openapi-statuses.test.ts) becomes an error class of its own in the client.
 */

const codes = Object.keys(PROBLEMS) as ProblemCode[];
const problemOf = (code: ProblemCode, extra: Pick<Problem, "current" | "failed"> = {}): Problem => ({
  type: `urn:apostate:problem:${code}`,
  instance: "/v1/entities/doc/a",
  title: PROBLEMS[code].title,
  status: PROBLEMS[code].status,
  code,
  detail: `a ${code} problem`,
  ...extra,
});

describe("ProblemError.from", () => {
  it("gives every code a subclass of its own, named as its class, carrying status, code and body", () => {
    const classes = new Set<unknown>();
    for (const code of codes) {
      const problem = problemOf(code);
      const error = ProblemError.from(problem);
      expect(error, code).toBeInstanceOf(ProblemError);
      expect(error.constructor, code).not.toBe(ProblemError);
      expect(error.name, code).toBe(error.constructor.name);
      expect(error.name, code).toMatch(/Error$/);
      expect(error, code).toMatchObject({ status: problem.status, code, problem, message: problem.detail });
      classes.add(error.constructor);
    }
    expect(classes.size).toBe(codes.length);
  });

  it("gives the entity as it is now on exactly the problems that carry it", () => {
    const current = { type: "doc", id: "a", version: 3, data: { n: 1 }, createdAt: "t", updatedAt: "t" };
    const withCurrent = codes.filter((code) => ProblemError.from(problemOf(code)) instanceof ProblemWithCurrentError);
    expect(withCurrent.sort()).toEqual(["condition-failed", "patch-conflict", "test-failed", "version-mismatch"]);
    for (const code of withCurrent) {
      expect((ProblemError.from(problemOf(code, { current })) as ProblemWithCurrentError).current, code).toEqual(current);
      expect((ProblemError.from(problemOf(code, { current: null })) as ProblemWithCurrentError).current, code).toBeNull();
    }
    expect(ProblemError.from(problemOf("test-failed"))).toBeInstanceOf(TestFailedError);
    expect(ProblemError.from(problemOf("patch-conflict"))).toBeInstanceOf(PatchConflictError);
    expect(ProblemError.from(problemOf("version-mismatch"))).toBeInstanceOf(VersionMismatchError);
    const failed = { index: 0, path: "/n", op: "gte" as const, value: 2 };
    expect((ProblemError.from(problemOf("condition-failed", { failed })) as ConditionFailedError).failed).toEqual(failed);
  });

  it("keeps a code this client does not know (from a newer server) as a plain ProblemError", () => {
    const problem = { ...problemOf("internal"), code: "teapot" } as unknown as Problem;
    const error = ProblemError.from(problem);
    expect(error.constructor).toBe(ProblemError);
    expect(error).toMatchObject({ code: "teapot", status: 500 });
  });
});
