import type { IncomingHttpHeaders, OutgoingHttpHeaders, RequestListener } from "node:http";
import { fileURLToPath } from "node:url";
import { OpenAPIBackend, SetMatchType, ValidationContext, type Operation } from "openapi-backend";
import type { ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import { afterEach } from "vitest";
import type { Reply, SendOptions } from "./http.js";
import { problemViolations } from "./problem.js";

/*
 * The contract checker: every request and answer that passes through a checked listener is held
 * against openapi.yaml by openapi-backend, a validator independent of the server's own. A
 * request the server accepted (2xx, 304) must be one the document allows, since a document
 * stricter than the server misleads clients as much as a looser one; every answer must be a
 * declared status with its declared headers and body. Violations fail the running test.
 */

const OPENAPI_PATH = fileURLToPath(new URL("../../openapi.yaml", import.meta.url));

/** One request as sent and its answer as given. */
export interface Exchange {
  method: string;
  /** Path and query, as sent. */
  url: string;
  requestHeaders: IncomingHttpHeaders;
  requestBody: string;
  status: number;
  responseHeaders: OutgoingHttpHeaders | IncomingHttpHeaders;
  responseBody: string;
}

/**
 * openapi-backend reads a query as a form would, `+` as a space; in RFC 3986, which the
 * server and openapi.yaml follow, `+` is a plus sign (ids may hold one), so it goes as `%2B`.
 */
function rfc3986Query(url: string): string {
  const start = url.indexOf("?");
  return start === -1 ? url : url.slice(0, start) + url.slice(start).replaceAll("+", "%2B");
}

/** Our own response headers: when answered they must be declared for that status. */
const API_HEADERS = ["etag", "location", "idempotent-replayed", "retry-after", "allow", "www-authenticate"];

/** The parts of openapi.yaml's objects the checker reads (openapi-backend hands them over dereferenced). */
interface MediaTypes {
  [mediaType: string]: { schema?: object } | undefined;
}
interface RequestBody {
  required?: boolean;
  content: MediaTypes;
}
interface Response {
  headers?: Record<string, { required?: boolean }>;
  content?: MediaTypes;
  "x-problem-codes"?: string[];
}

const mediaTypeOf = (contentType: unknown): string =>
  String(contentType ?? "")
    .split(";", 1)[0]!
    .trim()
    .toLowerCase();

const messages = (errors: ValidateFunction["errors"]) =>
  (errors ?? []).map((error) => `${error.instancePath || "/"} ${error.message ?? error.keyword}`);

class ContractChecker {
  private readonly bodyValidators = new Map<object, ValidateFunction>();

  constructor(
    private readonly api: OpenAPIBackend,
    private readonly ajv: ReturnType<OpenAPIBackend["validator"]["getAjv"]>,
  ) {}

  /** What is wrong with one exchange; empty when nothing is. */
  check(exchange: Exchange): string[] {
    const operation = this.api.router.matchOperation({ method: exchange.method, path: exchange.url, headers: {} });
    return operation ? this.checkOperation(operation, exchange) : this.checkUnmatched(exchange);
  }

  /** No operation of the document: only refusals are possible, each a problem. */
  private checkUnmatched(exchange: Exchange): string[] {
    const { status, responseHeaders } = exchange;
    if (status < 400) return [`response: ${status} to a request no operation declares`];
    const violations = this.problemBody(exchange);
    if (status === 405 && responseHeaders.allow === undefined) violations.push("response: 405 without Allow");
    return violations;
  }

  private checkOperation(operation: Operation, exchange: Exchange): string[] {
    const id = `${operation.operationId ?? operation.method}`;
    const response = operation.responses?.[String(exchange.status)] as Response | undefined;
    if (!response) return [`response: ${exchange.status} is not declared for ${id}`];
    const accepted = exchange.status < 300 || exchange.status === 304;
    return [
      ...(accepted ? this.requestViolations(operation, exchange).map((v) => `request: ${v}`) : []),
      ...this.responseViolations(operation, response, exchange).map((v) => `response: ${v}`),
    ];
  }

  private requestViolations(operation: Operation, exchange: Exchange): string[] {
    const violations: string[] = [];
    const request = {
      method: exchange.method,
      path: rfc3986Query(exchange.url),
      headers: exchange.requestHeaders as Record<string, string | string[]>,
      ...(exchange.requestBody !== "" && { body: exchange.requestBody }),
    };
    try {
      const result = this.api.validator.validateRequest(request, operation);
      violations.push(...messages(result.errors));
    } catch (error) {
      violations.push((error as Error).message);
    }
    const requestBody = operation.requestBody as RequestBody | undefined;
    const mediaType = mediaTypeOf(exchange.requestHeaders["content-type"]);
    if (!requestBody) {
      if (exchange.requestBody !== "") violations.push("a body for an operation that takes none");
    } else if (mediaType !== "application/json" || !requestBody.content[mediaType]) {
      // openapi-backend checks application/json bodies only; the checker does the other media types.
      const schema = requestBody.content[mediaType]?.schema;
      if (exchange.requestBody === "") {
        if (requestBody.required) violations.push("the body is required");
      } else if (!schema) violations.push(`${mediaType} is not a declared media type`);
      else violations.push(...this.bodyViolations(schema, exchange.requestBody, "body", mediaType));
    }
    return violations;
  }

  private responseViolations(operation: Operation, response: Response, exchange: Exchange): string[] {
    const { status, responseHeaders, responseBody } = exchange;
    const violations: string[] = [];
    const headers = this.api.validator.validateResponseHeaders(responseHeaders, operation, {
      statusCode: status,
      setMatchType: SetMatchType.Any,
    });
    if (!headers.valid) violations.push(`headers: ${messages(headers.errors).join("; ")}`);
    const declared = Object.entries(response.headers ?? {}).map(([name, header]) => ({
      name: name.toLowerCase(),
      required: header.required === true,
    }));
    for (const { name, required } of declared) {
      if (required && responseHeaders[name] === undefined) violations.push(`${status} lacks ${name}`);
    }
    for (const name of API_HEADERS) {
      if (responseHeaders[name] !== undefined && !declared.some((header) => header.name === name)) {
        violations.push(`${name} is not declared for ${status}`);
      }
    }
    const content = response.content;
    if (exchange.method === "HEAD" || !content) {
      if (responseBody !== "") violations.push(`a body where ${status} declares none`);
      return violations;
    }
    const mediaType = mediaTypeOf(responseHeaders["content-type"]);
    const schema = content[mediaType]?.schema;
    if (!schema) return [...violations, `${mediaType || "no content type"} is not declared for ${status}`];
    violations.push(...this.bodyViolations(schema, responseBody, "body", mediaType));
    if (mediaType === "application/problem+json") {
      const code = (JSON.parse(responseBody) as { code?: unknown }).code;
      const codes = response["x-problem-codes"];
      if (codes && !codes.includes(String(code))) {
        violations.push(`problem code ${JSON.stringify(code)} is not one of ${status}'s (${codes.join(", ")})`);
      }
      violations.push(...problemViolations(JSON.parse(responseBody), status));
    }
    return violations;
  }

  /** The answer of an unknown route or method, which no operation describes: a well-formed problem. */
  private problemBody(exchange: Exchange): string[] {
    if (exchange.method === "HEAD") return [];
    if (mediaTypeOf(exchange.responseHeaders["content-type"]) !== "application/problem+json") {
      return [`response: ${exchange.status} is not a problem`];
    }
    const problem = this.api.definition.components?.schemas?.Problem as object;
    return [
      ...this.bodyViolations(problem, exchange.responseBody, "problem"),
      ...problemViolations(JSON.parse(exchange.responseBody), exchange.status),
    ].map((v) => `response: ${v}`);
  }

  private bodyViolations(schema: object, text: string, what: string, mediaType = "application/json"): string[] {
    let value: unknown = text;
    try {
      if (mediaType === "application/json" || mediaType.endsWith("+json")) value = JSON.parse(text);
    } catch {
      return [`${what} is not JSON: ${text.slice(0, 80)}`];
    }
    const validate = this.bodyValidators.get(schema) ?? this.ajv.compile(schema);
    this.bodyValidators.set(schema, validate);
    return validate(value) ? [] : [`${what}: ${messages(validate.errors).join("; ")}`];
  }
}

let checker: Promise<ContractChecker> | undefined;

/** The checker over openapi.yaml, loaded once per test file. */
function contractChecker(): Promise<ContractChecker> {
  checker ??= (async () => {
    const api = new OpenAPIBackend({
      definition: OPENAPI_PATH,
      strict: true,
      validate: true,
      // openapi-backend knows only a few formats; `date-time` and the rest come from ajv-formats.
      customizeAjv: (ajv) => addFormats.default(ajv),
    });
    await api.init();
    // The router rebuilds its operation list (lodash over every path) on each match; the
    // document never changes once loaded, so the list is built once.
    const operations = api.router.getOperations();
    api.router.getOperations = () => operations;
    return new ContractChecker(api, api.validator.getAjv(ValidationContext.Response));
  })();
  return checker;
}

const violations: string[] = [];
const pending = new Set<Promise<void>>();

/**
 * Compiles the checker now: its first use takes seconds of synchronous work, which a test keeps
 * away from its requests (a keep-alive connection can expire under such a stall).
 */
export async function loadContractChecker(): Promise<void> {
  await contractChecker();
}

/** What is wrong with one exchange according to openapi.yaml, known server disagreements forgiven. */
export async function contractViolations(exchange: Exchange): Promise<string[]> {
  return (await contractChecker()).check(exchange);
}

/** Checks one exchange; what is wrong fails the running test when it ends. */
async function checkExchange(exchange: Exchange): Promise<void> {
  const found = await contractViolations(exchange);
  const { method, url, status } = exchange;
  for (const violation of found) violations.push(`${method} ${url} → ${status}: ${violation}`);
}

/**
 * Checks a request made with `send` against a server in another process, where no listener can
 * be wrapped; what is wrong fails the running test when it ends.
 */
export function checkReply(method: string, path: string, options: SendOptions, reply: Reply): Promise<void> {
  const requestHeaders = Object.fromEntries(
    Object.entries(options.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value]),
  );
  return checkExchange({
    method,
    url: path,
    requestHeaders,
    requestBody: options.body ?? "",
    status: reply.status,
    responseHeaders: reply.headers,
    responseBody: reply.text,
  });
}

/**
 * `listener` with every exchange held against openapi.yaml: the request's body is taken as it
 * arrives (whether or not the server reads it), the answer as it is written.
 */
export async function checkedListener(listener: RequestListener): Promise<RequestListener> {
  await contractChecker();
  return (req, res) => {
    // Routers rewrite `req.url` on the way; the exchange is the request as it arrived.
    const { method = "GET", url = "/" } = req;
    const requestChunks: Buffer[] = [];
    const push = req.push.bind(req);
    req.push = (chunk: unknown, encoding?: BufferEncoding) => {
      if (chunk !== null) requestChunks.push(Buffer.from(chunk as Buffer));
      return push(chunk, encoding);
    };
    const responseChunks: Buffer[] = [];
    // node sends no body to a HEAD request, whatever the handler writes.
    const keep = (chunk: unknown) => {
      if (method === "HEAD") return;
      if (typeof chunk === "string" || chunk instanceof Uint8Array) responseChunks.push(Buffer.from(chunk));
    };
    const write = res.write;
    res.write = function (this: typeof res, chunk: unknown, ...rest: unknown[]) {
      keep(chunk);
      return Reflect.apply(write, this, [chunk, ...rest]) as boolean;
    } as typeof res.write;
    const end = res.end;
    res.end = function (this: typeof res, chunk?: unknown, ...rest: unknown[]) {
      keep(chunk);
      return Reflect.apply(end, this, [chunk, ...rest]) as typeof res;
    } as typeof res.end;
    res.once("finish", () => {
      const record = () =>
        checkExchange({
          method,
          url,
          requestHeaders: req.headers,
          requestBody: Buffer.concat(requestChunks).toString("utf8"),
          status: res.statusCode,
          responseHeaders: res.getHeaders(),
          responseBody: Buffer.concat(responseChunks).toString("utf8"),
        });
      // An answer can come before the body it refuses has arrived; the check waits for the rest.
      const done = req.complete ? record() : new Promise<void>((resolve) => req.once("close", resolve)).then(record);
      pending.add(done);
      void done.finally(() => pending.delete(done));
    });
    listener(req, res);
  };
}

const SETTLE_MS = 2000;

afterEach(async () => {
  await Promise.race([Promise.all(pending), new Promise((resolve) => setTimeout(resolve, SETTLE_MS).unref())]);
  const found = violations.splice(0);
  if (found.length > 0) {
    throw new Error(`the server and openapi.yaml disagree (${found.length}):\n${found.map((v) => `  - ${v}`).join("\n")}`);
  }
});
