import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { PROBLEMS } from "../../server/http/problems.js";

/*
 * openapi.yaml declares every status each operation can answer, each with the problem codes
 * the catalogue gives that status, so the document cannot silently lose one.
 */

interface Response {
  $ref?: string;
  content?: Record<string, unknown>;
  "x-problem-codes"?: string[];
}
interface Parameter {
  $ref?: string;
  name?: string;
  in?: string;
}
interface Operation {
  operationId: string;
  parameters?: Parameter[];
  requestBody?: unknown;
  security?: Record<string, string[]>[];
  responses: Record<string, Response>;
}
interface Document {
  security: Record<string, string[]>[];
  paths: Record<string, Record<string, Operation | Parameter[]>>;
  components: {
    parameters: Record<string, Parameter>;
    responses: Record<string, Response>;
    schemas: { ProblemCode: { enum: string[]; description: string } };
  };
}

const doc = parse(readFileSync(new URL("../../openapi.yaml", import.meta.url), "utf8")) as Document;
const METHODS = ["get", "head", "put", "patch", "post", "delete"];

const resolve = <T extends { $ref?: string }>(item: T, section: Record<string, T>): T =>
  item.$ref === undefined ? item : (section[item.$ref.split("/").pop() ?? ""] as T);

interface Declared {
  path: string;
  method: string;
  operation: Operation;
  /** Path and operation parameters, resolved. */
  parameters: Parameter[];
  /** Status → the problem codes its response lists (empty for a success or a body-less HEAD answer). */
  statuses: Map<string, string[]>;
}

const operations: Declared[] = Object.entries(doc.paths).flatMap(([path, item]) =>
  METHODS.filter((method) => method in item).map((method) => {
    const operation = item[method] as Operation;
    const shared = (item.parameters ?? []) as Parameter[];
    const parameters = [...shared, ...(operation.parameters ?? [])].map((p) => resolve(p, doc.components.parameters));
    const statuses = new Map(
      Object.entries(operation.responses).map(([status, response]) => [
        status,
        resolve(response, doc.components.responses)["x-problem-codes"] ?? [],
      ]),
    );
    return { path, method, operation, parameters, statuses };
  }),
);

const has = (declared: Declared, name: string, where: string) =>
  declared.parameters.some((p) => p.name === name && p.in === where);
const gets = operations.filter(({ method }) => method === "get");
type Pairs = readonly (readonly [status: string, code: string])[];
const when = (condition: boolean, ...pairs: Pairs): Pairs => (condition ? pairs : []);

/** The statuses and codes an operation can answer, by what it takes. */
function requiredCodes(declared: Declared): Pairs {
  const { path, operation } = declared;
  const plane = /^\/(v1|admin)\//.test(path);
  return [
    ["500", "internal"],
    ["415", "unsupported-media-type"],
    // What reads the store can find it busy or shutting down; the process probe and the API reference cannot.
    ...when(plane || path === "/readyz" || path === "/metrics", ["503", "unavailable"]),
    ...when(plane || path === "/metrics", ["401", "unauthorized"]),
    ...when(plane, ["400", "invalid-query"]),
    ...when(operation.requestBody !== undefined, ["400", "invalid-body"], ["413", "payload-too-large"]),
    ...when(has(declared, "type", "path"), ["400", "invalid-key"]),
    ...when(has(declared, "shard", "path"), ["404", "shard-not-found"], ["400", "invalid-query"]),
    ...when(has(declared, "Idempotency-Key", "header"), ["400", "invalid-idempotency-key"], ["422", "idempotency-key-reused"]),
    ...when(has(declared, "If-Match", "header"), ["412", "version-mismatch"]),
    ...when(has(declared, "cursor", "query"), ["400", "invalid-cursor"]),
  ];
}

describe("openapi.yaml declares every status each operation can answer", () => {
  it.each(operations.filter(({ method }) => method !== "head").map((d) => [d.operation.operationId, d] as const))(
    "%s",
    (_id, declared) => {
      const missing = requiredCodes(declared).filter(([status, code]) => !declared.statuses.get(status)?.includes(code));
      expect(missing).toEqual([]);
    },
  );

  it("lists each problem code under its catalogue status only", () => {
    const misplaced = operations.flatMap(({ operation, statuses }) =>
      [...statuses].flatMap(([status, codes]) =>
        codes
          .filter((code) => {
            const entry: { status: number; alsoStatus?: number } | undefined = PROBLEMS[code as keyof typeof PROBLEMS];
            return entry === undefined || ![entry.status, entry.alsoStatus].map(String).includes(status);
          })
          .map((code) => `${operation.operationId} ${status} ${code}`),
      ),
    );
    expect(misplaced).toEqual([]);
  });

  it("documents every code of the catalogue, and no other", () => {
    const { enum: codes, description } = doc.components.schemas.ProblemCode;
    expect([...codes].sort()).toEqual(Object.keys(PROBLEMS).sort());
    const undocumented = codes.filter(
      (code) => !description.includes(`- \`${code}\` (${PROBLEMS[code as keyof typeof PROBLEMS].status})`),
    );
    expect(undocumented).toEqual([]);
  });

  it("declares HEAD beside every GET: same parameters and statuses, no bodies", () => {
    for (const get of gets) {
      const head = operations.find(({ path, method }) => path === get.path && method === "head");
      const { operationId } = get.operation;
      expect(head?.operation.operationId, get.path).toBe(`head${operationId[0]?.toUpperCase()}${operationId.slice(1)}`);
      expect(head?.parameters).toEqual(get.parameters);
      expect([...(head?.statuses.keys() ?? [])]).toEqual([...get.statuses.keys()]);
      const bodies = Object.values(head?.operation.responses ?? {}).filter(
        (response) => resolve(response, doc.components.responses).content !== undefined,
      );
      expect(bodies, `${get.path} HEAD`).toEqual([]);
    }
  });

  it("declares tokens optional ({} beside the scheme) wherever a token applies", () => {
    const withToken = operations.filter(({ operation }) => (operation.security ?? doc.security).length > 0);
    expect(withToken.map(({ path }) => path)).toEqual(
      expect.arrayContaining(["/v1/entities/{type}/{id}", "/admin/shards", "/metrics"]),
    );
    for (const { operation } of withToken) {
      const security = operation.security ?? doc.security;
      expect(security, operation.operationId).toContainEqual({});
      expect(
        security.filter((requirement) => Object.keys(requirement).length > 0),
        operation.operationId,
      ).toHaveLength(1);
    }
  });
});
