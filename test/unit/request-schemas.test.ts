import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { loadOpenApiDocument } from "../../server/http/openapi-document.js";
import { RouteTable } from "../../server/http/route-table.js";

const table = RouteTable.load((await loadOpenApiDocument()).document);

describe("the request schemas of openapi.yaml", () => {
  // The server's validator compiles them without checking them against the meta-schema first.
  it("are valid draft-07 schemas, and compile in Ajv's strict mode", () => {
    const ajv = new Ajv({ strict: true });
    const problems: string[] = [];
    let checked = 0;
    for (const route of table.routes) {
      for (const operation of route.operations.values()) {
        const schemas = [
          ...operation.parameters.map((parameter) => [`${parameter.in} ${parameter.name}`, parameter.schema] as const),
          ...[...(operation.body ?? [])].map(([type, schema]) => [`body ${type}`, schema] as const),
        ];
        for (const [what, schema] of schemas) {
          checked += 1;
          const where = `${operation.operationId}, ${what}`;
          if (!ajv.validateSchema(schema)) problems.push(`${where}: ${ajv.errorsText(ajv.errors)}`);
          try {
            ajv.compile(schema);
          } catch (error) {
            problems.push(`${where}: ${(error as Error).message}`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(20);
  });
});
