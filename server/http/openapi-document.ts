import { readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** openapi.yaml, the one source of truth for the HTTP contract (`npm run build` copies it into dist/). */
const OPENAPI_YAML = fileURLToPath(new URL("../../openapi.yaml", import.meta.url));
/** The same document as JSON, written beside the copy in dist/ by `npm run build`. */
const OPENAPI_JSON = OPENAPI_YAML.replace(/\.yaml$/, ".json");

/** openapi.yaml as the server reads it: the text it serves and the document it validates with. */
export interface OpenApiDocument {
  yaml: string;
  document: Record<string, unknown>;
}

let loaded: Promise<OpenApiDocument> | undefined;

/**
 * The document, read once per process. Loading the YAML parser and parsing the document cost a
 * good share of a worker's start-up, so a build's JSON copy is read instead when it is at least
 * as new as the YAML (in a source checkout there is none, and an edited YAML is never shadowed
 * by an old copy).
 */
export function loadOpenApiDocument(): Promise<OpenApiDocument> {
  loaded ??= (async () => {
    const yaml = readFileSync(OPENAPI_YAML, "utf8");
    const document = jsonCopyIsCurrent()
      ? (JSON.parse(readFileSync(OPENAPI_JSON, "utf8")) as Record<string, unknown>)
      : ((await import("yaml")).parse(yaml) as Record<string, unknown>);
    return { yaml, document };
  })();
  return loaded;
}

function jsonCopyIsCurrent(): boolean {
  const json = statSync(OPENAPI_JSON, { throwIfNoEntry: false });
  return json !== undefined && json.mtimeMs >= statSync(OPENAPI_YAML).mtimeMs;
}
