import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { ApiRequest } from "./api-request.js";
import { hasBodyFraming, readJsonBody, refuseBody } from "./json-body.js";
import { ProblemError, type ProblemCode } from "./problems.js";
import type { Operation, Parameter, Schema } from "./route-table.js";

type Part = "params" | "query" | "headers";

/** What one operation checks, compiled on its first request. */
interface CompiledOperation {
  params: PartValidator;
  query: PartValidator;
  headers: PartValidator;
  bodies: ReadonlyMap<string, ValidateFunction>;
}

interface PartValidator {
  part: Part;
  parameters: readonly Parameter[];
  validate: ValidateFunction;
}

/**
 * Checks requests against their operation in openapi.yaml: path parameters, query parameters,
 * the headers the operation declares, and the body by media type. Each operation's schemas are
 * compiled with Ajv once, on the operation's first request, so start-up compiles nothing.
 *
 * @example
 * const validator = new RequestValidator({ bodyLimit: 1_048_576 });
 * await validator.prepare(apiRequest, operationOf(route, req.method));
 */
export class RequestValidator {
  // OpenAPI 3.0 schemas are a dialect of JSON Schema draft 4/5 that Ajv reads as draft-07, with
  // its `nullable` keyword; the document uses neither `discriminator` nor formats in requests.
  // Checking each schema against draft-07's meta-schema would first compile the meta-schema,
  // about 0.1 s of a worker's first request (a start-up's first /healthz); the schemas of
  // openapi.yaml are checked against it once, by test/unit/request-schemas.test.ts.
  private readonly ajv = new Ajv({ strict: true, allErrors: false, validateSchema: false });
  private readonly compiled = new Map<Operation, CompiledOperation>();

  constructor(private readonly options: { bodyLimit: number }) {}

  /**
   * Fills in the request's `params`, `query`, `body` and `bodyDigest`, or throws the problem
   * that refuses it. The query is split and percent-decoded once, the body read once.
   */
  async prepare(req: ApiRequest, operation: Operation): Promise<void> {
    const compiled = this.compiledFor(operation);
    const params: Record<string, string> = {};
    req.match?.route.paramNames.forEach((name, i) => {
      const raw = req.match?.values[i] ?? "";
      params[name] = decodeParameter(raw, () => refusal("params", name, "is not percent-encoded correctly"));
    });
    check(compiled.params, params);
    req.params = params;

    if (operation.strictQuery) {
      const query = parseQuery(req.originalUrl);
      for (const name of Object.keys(query)) {
        if (!compiled.query.parameters.some((parameter) => parameter.name === name)) {
          throw new ProblemError("invalid-query", `unknown query parameter "${name}"${declaredList(compiled.query)}`);
        }
      }
      check(compiled.query, query);
      req.query = query;
    }

    const headers: Record<string, string> = {};
    for (const { name } of compiled.headers.parameters) {
      const value = req.headers[name];
      if (typeof value === "string") headers[name] = value;
    }
    check(compiled.headers, headers);

    if (operation.body) await this.readBody(req, compiled.bodies, operation.bodyLimit ?? this.options.bodyLimit);
    else await refuseBody(req, this.options.bodyLimit);
  }

  private async readBody(req: ApiRequest, bodies: ReadonlyMap<string, ValidateFunction>, limit: number): Promise<void> {
    const contentLength = req.headers["content-length"];
    if (!hasBodyFraming(req) || contentLength === "0") {
      throw new ProblemError("invalid-body", `${req.method} needs a body, and the request has none`);
    }
    const contentType = req.headers["content-type"] ?? "";
    const [mediaType = "", ...params] = contentType.split(";").map((part) => part.trim().toLowerCase());
    const validate = bodies.get(mediaType);
    const charset = params.find((param) => param.startsWith("charset="))?.slice("charset=".length);
    if (!validate || (charset !== undefined && charset.replaceAll('"', "") !== "utf-8")) {
      const accepted = [...bodies.keys()].join(", ");
      throw new ProblemError("unsupported-media-type", `the body must be ${accepted} (UTF-8), not "${contentType}"`);
    }
    const { body, digest } = await readJsonBody(req, {
      limit,
      digest: req.headers["idempotency-key"] !== undefined,
    });
    if (!validate(body)) throw new ProblemError("invalid-body", describe("body", validate.errors));
    req.body = body;
    req.bodyDigest = digest;
  }

  private compiledFor(operation: Operation): CompiledOperation {
    let compiled = this.compiled.get(operation);
    if (!compiled) {
      const part = (where: Parameter["in"], name: Part) => {
        const parameters = operation.parameters
          .filter((parameter) => parameter.in === where)
          // node names headers in lower case.
          .map((parameter) => (where === "header" ? { ...parameter, name: parameter.name.toLowerCase() } : parameter));
        return { part: name, parameters, validate: this.ajv.compile(objectSchema(parameters)) };
      };
      compiled = {
        params: part("path", "params"),
        query: part("query", "query"),
        headers: part("header", "headers"),
        bodies: new Map([...(operation.body ?? [])].map(([type, schema]) => [type, this.ajv.compile(schema)])),
      };
      this.compiled.set(operation, compiled);
    }
    return compiled;
  }
}

function objectSchema(parameters: readonly Parameter[]): Schema {
  return {
    type: "object",
    properties: Object.fromEntries(parameters.map((parameter) => [parameter.name, parameter.schema])),
    required: parameters.filter((parameter) => parameter.required).map((parameter) => parameter.name),
  };
}

/**
 * Validates a part's values, read as the numbers their schemas declare where they are written as
 * decimal numbers; anything else stays a string, which the schema then refuses. (Ajv's own
 * coercion would take "0x1", "1e1" or " 1" for a number too.)
 */
function check(part: PartValidator, values: Readonly<Record<string, string | string[]>>): void {
  const typed: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [name, value] of Object.entries(values)) {
    const type = part.parameters.find((parameter) => parameter.name === name)?.schema.type;
    const numeric = (type === "integer" || type === "number") && typeof value === "string" && DECIMAL.test(value);
    typed[name] = numeric ? Number(value) : value;
  }
  if (part.validate(typed)) return;
  const error = part.validate.errors?.[0];
  const missing = (error?.params as { missingProperty?: string } | undefined)?.missingProperty;
  const name = error?.instancePath.split("/")[1] ?? missing ?? "";
  throw refusal(part.part, name, error?.message ?? "is not valid");
}

const DECIMAL = /^-?\d+(\.\d+)?$/;

/** The problem code for a refused part: ids and types are keys; the rest of a URL is its query. */
function refusal(part: Part, name: string, message: string): ProblemError {
  let code: ProblemCode = "invalid-query";
  if (part === "params" && (name === "type" || name === "id")) code = "invalid-key";
  if (part === "headers") code = name === "idempotency-key" ? "invalid-idempotency-key" : "invalid-body";
  return new ProblemError(code, `/${part}/${name}: ${message}`);
}

function describe(part: string, errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((error) => `/${part}${error.instancePath}: ${error.message ?? "is not valid"}`).join("; ");
}

function declaredList(part: PartValidator): string {
  const names = part.parameters.map((parameter) => parameter.name);
  return names.length === 0 ? "; this route takes none" : `; this route takes ${names.join(", ")}`;
}

function decodeParameter(raw: string, malformed: () => ProblemError): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw malformed();
  }
}

/**
 * The query parameters of a URL, each name and value percent-decoded once. `+` is a literal
 * plus, as RFC 3986 has it (form encoding's space would make an id prefix such as `a+b`
 * unreachable). A name given twice has a list of values, which no declared parameter takes.
 */
function parseQuery(url: string): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  const start = url.indexOf("?");
  if (start === -1) return query;
  for (const pair of url.slice(start + 1).split("&")) {
    if (pair === "") continue;
    const equals = pair.indexOf("=");
    const malformed = () => new ProblemError("invalid-query", `"${pair}" is not percent-encoded correctly`);
    const name = decodeParameter(equals === -1 ? pair : pair.slice(0, equals), malformed);
    const value = equals === -1 ? "" : decodeParameter(pair.slice(equals + 1), malformed);
    const previous = query[name];
    query[name] = previous === undefined ? value : [previous, value].flat();
  }
  return query;
}
